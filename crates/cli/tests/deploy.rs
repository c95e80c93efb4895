//! What `deploy/` ships, checked offline: the Kubernetes manifests against
//! the Kubernetes schemas (`kubernetes-validate`), the balancer config by
//! HAProxy itself, the shutdown timings against each other, and the
//! FROM-scratch image built with podman and run from its own filesystem.
//! Missing tools fail the tests (scripts/apt-packages.txt,
//! scripts/python-requirements.txt).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn validate(files: &[PathBuf]) -> std::process::Output {
    // The venv scripts/test makes (fails, with the command, when missing).
    let python = common::test_python();
    let probe = Command::new(&python)
        .args(["-c", "import kubernetes_validate"])
        .output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "{} with `kubernetes-validate` is required (scripts/python-requirements.txt; scripts/test installs it)",
        python.display()
    );
    Command::new(&python)
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "--kubernetes-version",
            "1.30",
        ])
        .args(files)
        .output()
        .expect("run kubernetes-validate")
}

#[test]
fn the_kubernetes_manifests_validate_against_the_schemas() {
    let dir = repo().join("deploy/kubernetes");
    let manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(manifests.len() >= 2, "{manifests:?}");
    let output = validate(&manifests);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The control: the validator does reject a broken manifest.
    let broken = tempfile::tempdir().unwrap();
    let path = broken.path().join("broken.yaml");
    let text = std::fs::read_to_string(dir.join("exec-server.yaml"))
        .unwrap()
        .replace("replicas: 3", "replicas: three");
    std::fs::write(&path, text).unwrap();
    assert!(!validate(&[path]).status.success());
}

#[test]
fn the_balancer_config_is_accepted_by_haproxy() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["exec.example.com".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert = dir.path().join("cert.pem");
    let pem = dir.path().join("tls.pem");
    std::fs::write(&cert, certificate.pem()).unwrap();
    std::fs::write(
        &pem,
        format!("{}{}", certificate.pem(), key.serialize_pem()),
    )
    .unwrap();
    let output = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(repo().join("deploy/haproxy/haproxy.cfg"))
        .env(
            "EXEC_SERVER_DOMAIN",
            "exec-server.default.svc.cluster.local",
        )
        .env("HAPROXY_TLS_PEM", &pem)
        .env("EXEC_SERVER_CA", &cert)
        .output()
        .expect("`haproxy` (Debian package haproxy) is required");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("Configuration file is valid"), "{text}");
}

/// The number after `key` on the first line that has it.
fn number_after(text: &str, key: &str) -> u64 {
    let at = text.find(key).unwrap_or_else(|| panic!("no {key}")) + key.len();
    text[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {key}"))
}

#[test]
fn the_pod_grace_covers_the_drain_and_the_cleanup() {
    let manifest =
        std::fs::read_to_string(repo().join("deploy/kubernetes/exec-server.yaml")).unwrap();
    let drain_ms = number_after(&manifest, "--shutdown-grace-ms=");
    let pod_grace_s = number_after(&manifest, "terminationGracePeriodSeconds:");
    // The drain, then up to the same grace for the children, then SIGKILL
    // by the server itself, before the kubelet's.
    assert!(
        pod_grace_s * 1000 >= 2 * drain_ms + 5000,
        "terminationGracePeriodSeconds {pod_grace_s} s < 2 x {drain_ms} ms + 5 s"
    );
}

#[test]
fn the_scratch_image_builds_with_podman_and_runs_from_its_own_files() {
    assert!(
        Command::new("podman").arg("--version").output().is_ok(),
        "`podman` (Debian package podman) is required"
    );
    let tag = format!("localhost/exec-server-test:{}", std::process::id());
    let built = Command::new(repo().join("deploy/container/build-image.sh"))
        .args([common::server_bin(), &tag])
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    // `podman run` needs a container runtime this VM refuses (crun: hybrid
    // cgroups, setrlimit), so the image's root filesystem is run with
    // chroot: it proves the image holds everything the binary needs.
    let mount = Command::new("podman")
        .args(["image", "mount", &tag])
        .output()
        .unwrap();
    let root = String::from_utf8(mount.stdout).unwrap().trim().to_string();
    let version = Command::new("chroot")
        .args([&root, "/usr/local/bin/exec-server", "--version"])
        .output();
    let _ = Command::new("podman")
        .args(["image", "unmount", &tag])
        .output();
    let _ = Command::new("podman")
        .args(["rmi", "--force", &tag])
        .output();
    let version = version.unwrap();
    assert!(
        version.status.success(),
        "{}",
        String::from_utf8_lossy(&version.stderr)
    );
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("exec-server "));
}
