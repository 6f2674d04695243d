//! The container image, built with Debian's podman from the project's
//! Containerfile and the binary these tests were built with (no registry
//! is reachable: the runtime base is made from the binary's own
//! libraries), then run as a user would: an event posted to it is printed
//! by its console destination, its health check answers without a shell,
//! and its store survives a restart on its volume.

use crate::helpers::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// podman as this machine runs it (see docs/development.md).
fn podman(conf: &Path) -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", conf).args([
        "--storage-driver",
        "vfs",
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
    ]);
    cmd
}

/// Copies `file` into `root` at the same absolute path.
fn place(root: &Path, file: &Path) {
    let target = root.join(file.strip_prefix("/").unwrap());
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(file, target).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(container_tests), ignore = "install Debian's podman and runc to run it")]
async fn the_image_runs_serves_probes_and_keeps_its_store_on_its_volume() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("containers.conf");
    std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n").unwrap();
    let tag = format!("raaft-relay-test-{}", std::process::id());

    // The runtime base: the loader and the libraries the binary links.
    let binary = Path::new(env!("CARGO_BIN_EXE_raaft-relay"));
    let base = dir.path().join("base");
    let ldd = succeeded(Command::new("ldd").arg(binary).output().unwrap(), "ldd");
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        place(&base.join("root"), &std::fs::canonicalize(lib).unwrap());
        place(&base.join("root"), Path::new(lib));
    }
    std::fs::write(base.join("Containerfile"), "FROM scratch\nCOPY root/ /\n").unwrap();
    succeeded(
        podman(&conf)
            .args(["build", "-t", &format!("{tag}-base"), "-f"])
            .arg(base.join("Containerfile"))
            .arg(&base)
            .output()
            .unwrap(),
        "the base",
    );

    // The binary as the build stage would leave it, without debug info.
    let built = dir.path().join("built");
    std::fs::create_dir_all(built.join("state")).unwrap();
    succeeded(
        Command::new("strip")
            .arg("--strip-debug")
            .arg(binary)
            .arg("-o")
            .arg(built.join("raaft-relay"))
            .output()
            .unwrap(),
        "strip",
    );
    let image = succeeded(
        podman(&conf)
            .args(["build", "--format", "docker", "--target", "runtime", "-t", &tag])
            .arg(format!("--build-arg=RUNTIME_IMAGE=localhost/{tag}-base"))
            .arg(format!("--build-context=build={}", built.display()))
            .arg("-f")
            .arg(repo_path("Containerfile"))
            .arg(repo_path(""))
            .output()
            .unwrap(),
        "the image",
    );
    assert!(image.contains("COMMIT"), "{image}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let name = format!("{tag}-run");
    let volume = format!("{tag}-store");
    let _cleanup = Cleanup {
        conf: conf.clone(),
        name: name.clone(),
        volume: volume.clone(),
        images: vec![tag.clone(), format!("{tag}-base")],
    };
    succeeded(
        podman(&conf)
            .args(["run", "-d", "--network", "host", "--name", &name, "-v", &format!("{volume}:/var/lib/raaft-relay")])
            .args(["-e", &format!("RAAFT_TOKEN={TOKEN}"), "-e", &format!("RAAFT_RELAY_LISTEN=127.0.0.1:{port}")])
            .arg(&tag)
            .output()
            .unwrap(),
        "podman run",
    );
    let base_url = format!("http://127.0.0.1:{port}");
    let healthy = || async {
        let client = reqwest::Client::new();
        let start = std::time::Instant::now();
        loop {
            if client.get(format!("{base_url}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            let logs = podman(&conf).args(["logs", &name]).output().unwrap();
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the container did not start:\n{}",
                String::from_utf8_lossy(&logs.stderr)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    healthy().await;
    // Unprivileged, with its health check inside the image.
    let user =
        succeeded(podman(&conf).args(["inspect", "--format", "{{.Config.User}}", &tag]).output().unwrap(), "inspect");
    assert_eq!(user.trim(), "65532:65532");
    succeeded(podman(&conf).args(["healthcheck", "run", &name]).output().unwrap(), "the health check");

    let event = sample("canceled.json");
    let post = |body: String| {
        let url = format!("{base_url}/webhooks/raaft");
        async move {
            reqwest::Client::new()
                .post(url)
                .header("x-raaft-token", TOKEN)
                .body(body)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(post(event.clone()).await["deliveries"], 1);
    let start = std::time::Instant::now();
    loop {
        let logs = succeeded(podman(&conf).args(["logs", &name]).output().unwrap(), "podman logs");
        if logs.contains("Raaft canceled: Ana Lima") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the console destination printed nothing:\n{logs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGTERM drains and exits 0; started again, the store on the volume
    // still knows the event.
    succeeded(podman(&conf).args(["stop", "--time", "20", &name]).output().unwrap(), "podman stop");
    let exit = succeeded(
        podman(&conf).args(["inspect", "--format", "{{.State.ExitCode}}", &name]).output().unwrap(),
        "inspect",
    );
    assert_eq!(exit.trim(), "0");
    succeeded(podman(&conf).args(["start", &name]).output().unwrap(), "podman start");
    healthy().await;
    assert_eq!(post(event).await["deliveries"], 0, "a duplicate: the store survived the restart");
}

/// Removes the test's container, volume and images.
struct Cleanup {
    conf: std::path::PathBuf,
    name: String,
    volume: String,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = podman(&self.conf).args(["rm", "-f", "-t", "0", &self.name]).output();
        let _ = podman(&self.conf).args(["volume", "rm", "-f", &self.volume]).output();
        for image in &self.images {
            let _ = podman(&self.conf).args(["rmi", "-f", image]).output();
        }
    }
}
