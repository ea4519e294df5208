//! The local lab's run folder: its pidfiles and unix sockets (haproxy's admin socket).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Longest unix socket path Linux takes (`sun_path` is 108 bytes with its NUL).
const SOCKET_PATH_MAX: usize = 107;
/// Room kept after the run folder for a socket's name (`/haproxy.sock` and a margin).
const SOCKET_NAME_ROOM: usize = 24;

/// The folder of pidfiles and unix sockets of the lab in `lab_dir`. A socket path must fit
/// in 108 bytes, which a deep Jenkins workspace does not leave: then it moves to a short,
/// journaled folder in the temp dir, named after the lab folder.
pub fn run_dir(lab_dir: &Path) -> PathBuf {
    let inside = lab_dir.join("run");
    if inside.as_os_str().len() + SOCKET_NAME_ROOM <= SOCKET_PATH_MAX {
        return inside;
    }
    let digest = Sha256::digest(lab_dir.as_os_str().as_encoded_bytes());
    let tag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    std::env::temp_dir().join(format!("rollci-{tag}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_stay_in_the_lab_unless_its_path_is_too_long() {
        assert_eq!(
            run_dir(Path::new("/w/.rollci/lab")),
            PathBuf::from("/w/.rollci/lab/run")
        );
        let deep = PathBuf::from(format!(
            "/var/lib/jenkins/workspace/{}/.rollci/lab",
            "folder/job".repeat(8)
        ));
        let run = run_dir(&deep);
        assert!(run.starts_with(std::env::temp_dir()), "{}", run.display());
        assert!(run.join("haproxy.sock").as_os_str().len() < 108);
        assert_eq!(run, run_dir(&deep), "every step finds the same folder");
    }
}
