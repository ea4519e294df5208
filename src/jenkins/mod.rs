//! The lab's Jenkinsfile and Pipeline job `config.xml`, rendered from the lab file, the
//! periodic strays job's, rendered from flags, and Jenkins' REST API to push the job and
//! lint the Jenkinsfile.

pub mod api;
pub mod render;
pub mod strays;
