//! Every cross-crate test in one binary: the plugins through their dylibs on
//! the sandbox and the real control plane, the AWS and Azure peers, the CLI,
//! `polysync serve`, other-language hosts and the deployment artefacts. One
//! process shares one cluster of each kind, one moto and one build of every
//! artefact; credentials are per connection, so nothing here sets process-wide
//! environment variables.

mod aks_conformance;
mod aks_e2e;
mod c_host;
mod deploy;
mod ecs_conformance;
mod ecs_e2e;
mod eks_conformance;
mod eks_e2e;
mod fake_conformance;
mod host_e2e;
mod kubernetes_api;
mod kubernetes_conformance;
mod kubernetes_e2e;
mod kubernetes_failures;
mod kubernetes_outcomes;
mod kubernetes_real;
mod layout;
mod plugin_loading;
mod python_ctypes;
mod reruns_e2e;
mod serve_e2e;
