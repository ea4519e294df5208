//! Folders that hold unix sockets (haproxy's admin socket, ssh control sockets): a socket
//! path must fit in 108 bytes, which a deep Jenkins workspace does not leave.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Longest unix socket path Linux takes (`sun_path` is 108 bytes with its NUL).
const SOCKET_PATH_MAX: usize = 107;
/// Room kept after the folder for a socket's name (`/haproxy.sock`, or ssh's `%C`: 40
/// hex digits, plus ssh's temporary suffix while it binds).
const SOCKET_NAME_ROOM: usize = 64;

/// `wanted` when a socket name still fits after it; else a short folder in the temp dir,
/// named after `owner` (the same folder for every step of the lab, journaled by its user).
pub fn short_dir(wanted: &Path, owner: &Path) -> PathBuf {
    if wanted.as_os_str().len() + SOCKET_NAME_ROOM <= SOCKET_PATH_MAX {
        return wanted.to_path_buf();
    }
    let digest = Sha256::digest(owner.as_os_str().as_encoded_bytes());
    let tag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    std::env::temp_dir().join(format!("rollci-{tag}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_stay_in_the_lab_unless_its_path_is_too_long() {
        let lab = Path::new("/w/.rollci/lab");
        assert_eq!(
            short_dir(&lab.join("run"), lab),
            PathBuf::from("/w/.rollci/lab/run")
        );
        let deep = PathBuf::from(format!(
            "/var/lib/jenkins/workspace/{}/.rollci/lab",
            "folder/job".repeat(8)
        ));
        let run = short_dir(&deep.join("run"), &deep);
        assert!(run.starts_with(std::env::temp_dir()), "{}", run.display());
        assert!(run.join("a".repeat(40)).as_os_str().len() + 20 < 108);
        assert_eq!(
            run,
            short_dir(&deep.join("run"), &deep),
            "every step finds the same folder"
        );
    }
}
