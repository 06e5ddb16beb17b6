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
    fn page(&self, kind: &str, namespace: &str, name: &str) -> String {
        let region = self.aws.console_region();
        format!(
            "{}/eks/home?region={region}#/clusters/{}/{kind}/{name}?namespace={namespace}",
            polysync_aws::console_base(&region),
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
        let aws =
            |region: &str| Aws::new(polysync_aws::AwsSettings { region: Some(region.into()), ..Default::default() });
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
