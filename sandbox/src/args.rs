//! Command-line flags of a sandbox, shared by `polysync-sandbox` and
//! `polysync sandbox`.

use std::path::PathBuf;

use crate::{SandboxConfig, SeedConfig};

#[derive(clap::Args, Debug, Clone)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Where to write the kubeconfig.
    #[arg(long, default_value = "sandbox.kubeconfig")]
    pub kubeconfig: PathBuf,
    /// Namespace for generated objects and the kubeconfig's default.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Finished Jobs to generate.
    #[arg(long, default_value_t = 50)]
    pub jobs: usize,
    /// CronJobs to generate (each with one finished Job it owns).
    #[arg(long, default_value_t = 2)]
    pub cronjobs: usize,
    /// A YAML file of objects to create at start.
    #[arg(long)]
    pub seed_file: Option<PathBuf>,
    /// Simulated durations are multiplied by this (0.1: a 10 s sleep takes 1 s).
    #[arg(long, default_value_t = 1.0, value_parser = parse_time_scale)]
    pub time_scale: f64,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    pub insecure_http: bool,
    /// Do not run the CronJob controller.
    #[arg(long)]
    pub no_cronjobs: bool,
}

/// A time scale: a finite number in (0, 1000].
pub fn parse_time_scale(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1000.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a time scale; give a number above 0 and at most 1000 (0.1 makes a 10 s sleep take 1 s)"
        )),
    }
}

impl SandboxArgs {
    pub fn config(&self) -> SandboxConfig {
        SandboxConfig {
            bind: ([127, 0, 0, 1], self.port).into(),
            tls: !self.insecure_http,
            time_scale: self.time_scale,
            cronjob_controller: !self.no_cronjobs,
            seed: SeedConfig {
                namespace: self.namespace.clone(),
                jobs: self.jobs,
                cronjobs: self.cronjobs,
                file: self.seed_file.clone(),
            },
            ..SandboxConfig::default()
        }
    }
}
