//! EKS console pages: the cluster's Job (or CronJob) in its region. Runs
//! are Jobs, so a run's page is its Job's.

use std::sync::Arc;

use polysync_kube_jobs::Monitor;

use crate::cluster::Aws;

#[derive(Debug, Clone)]
pub struct EksConsole {
    pub aws: Arc<Aws>,
    pub cluster: String,
}

impl EksConsole {
    /// The connection's region: the setting, else the one the AWS chain
    /// resolved (known once connected), else the environment's.
    fn region(&self) -> String {
        self.aws
            .settings
            .region
            .clone()
            .or_else(|| self.aws.resolved_region())
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into())
    }

    fn base(&self, r: &str) -> String {
        if r.starts_with("cn-") {
            format!("https://{r}.console.amazonaws.cn")
        } else if r.starts_with("us-gov-") {
            "https://console.amazonaws-us-gov.com".to_owned()
        } else {
            format!("https://{r}.console.aws.amazon.com")
        }
    }

    fn page(&self, kind: &str, namespace: &str, name: &str) -> String {
        let region = self.region();
        format!(
            "{}/eks/home?region={region}#/clusters/{}/{kind}/{name}?namespace={namespace}",
            self.base(&region),
            self.cluster
        )
    }
}

impl Monitor for EksConsole {
    fn entry(&self, namespace: &str, external_id: &str) -> Option<String> {
        Some(match external_id.strip_prefix(polysync_kube_jobs::entry::CRONJOB_PREFIX) {
            Some(name) => self.page("cronjobs", namespace, name),
            None => self.page("jobs", namespace, external_id),
        })
    }

    fn run(&self, namespace: &str, run_id: &str) -> Option<String> {
        Some(self.page("jobs", namespace, run_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_in_the_clusters_region_and_partition() {
        let aws = |region: &str| Aws::new(polysync_aws::AwsSettings { region: Some(region.into()), ..Default::default() });
        let c = EksConsole { aws: aws("eu-west-1"), cluster: "prod".into() };
        assert_eq!(
            c.run("batch", "nightly-3f2a").unwrap(),
            "https://eu-west-1.console.aws.amazon.com/eks/home?region=eu-west-1#/clusters/prod/jobs/nightly-3f2a?namespace=batch"
        );
        assert!(c.entry("batch", "cronjob/hourly").unwrap().contains("/cronjobs/hourly?"));
        let cn = EksConsole { aws: aws("cn-north-1"), cluster: "x".into() };
        assert!(cn.run("d", "j").unwrap().starts_with("https://cn-north-1.console.amazonaws.cn/"));
    }
}
