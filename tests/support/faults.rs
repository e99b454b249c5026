//! Support for the fault and hostile-input tests: a `plumb serve` with extra
//! environment, its peak memory, and misbehaving servers on loopback (a Git
//! server that accepts and never answers).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use super::{Plumb, ServeOptions, TEST_POLL_SECONDS, eventually, free_port, kubeconfig};

/// Starts `plumb serve` like [`Plumb::start`], with more environment
/// variables (`PLUMB_WEBHOOK_SECRET`, say) and `args`.
pub async fn start_with_env(
    work: &Path,
    apps_yaml: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<Plumb> {
    let apps_file = work.join("apps.yaml");
    std::fs::write(&apps_file, apps_yaml)?;
    let (data_dir, log, port) = (work.join("data"), work.join("plumb.log"), free_port());
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let bin =
        std::env::var_os("PLUMB_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_plumb").into());
    let options = ServeOptions {
        cluster_apps: None,
        poll_seconds: TEST_POLL_SECONDS,
        extra_args: args.iter().map(|a| a.to_string()).collect(),
        kubeconfig: None,
        auth: false,
    };
    let mut command = Command::new(bin);
    command.arg("serve");
    if !args.contains(&"--repo-poll-interval") {
        command
            .arg("--repo-poll-interval")
            .arg(TEST_POLL_SECONDS.to_string());
    }
    let child = command
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(if args.contains(&"--namespace") {
            &["--insecure-disable-auth"][..]
        } else {
            &["--no-cluster-apps", "--insecure-disable-auth"][..]
        })
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--apps")
        .arg(&apps_file)
        .envs(env.iter().copied())
        .env("PLUMB_LOG", "info,plumb_engine=debug")
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .context("cannot start plumb serve")?;
    let plumb = Plumb {
        child,
        url: format!("http://127.0.0.1:{port}"),
        data_dir,
        apps_file,
        port,
        log,
        options,
    };
    let healthz = format!("{}/healthz", plumb.url);
    eventually(
        "plumb serve answers /healthz",
        Duration::from_secs(60),
        || {
            let healthz = healthz.clone();
            async move {
                Ok(reqwest::get(&healthz)
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ()))
            }
        },
    )
    .await
    .with_context(|| format!("log:\n{}", plumb.log_text()))?;
    Ok(plumb)
}

/// The process id of a running `plumb serve`.
pub fn pid(plumb: &Plumb) -> u32 {
    plumb.child.id()
}

/// A `VmHWM`-style line of `/proc/PID/status`, in KiB (`VmHWM`: peak
/// resident memory; `VmRSS`: now).
pub fn memory_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// A TCP listener on loopback that accepts connections and never answers
/// (a Git server that hangs). Connections are held until it is dropped.
pub struct Hanging {
    /// Its port.
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Hanging {
    /// Starts listening.
    pub fn start() -> Result<Hanging> {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    held.push(stream);
                }
            }
        });
        Ok(Hanging { port, stop })
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// An HTTP proxy on loopback in front of a Kubernetes API server that
/// answers every `every`-th request itself, alternately 429 (with
/// `Retry-After: 1`) and 503, and forwards the others. Clients talk plain
/// HTTP/1.1 to it; it talks TLS to the API server (any certificate).
/// Each client connection gets its own upstream connection; watch streams
/// are relayed chunk by chunk.
pub struct FaultyProxy {
    /// Its port.
    pub port: u16,
    /// Requests seen.
    pub requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Requests answered with a fault.
    pub faults: std::sync::Arc<std::sync::atomic::AtomicU64>,
    every: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FaultyProxy {
    /// Starts it in front of `upstream` (`127.0.0.1:PORT` of an https API
    /// server); `every` 0 forwards everything.
    pub fn start(upstream: std::net::SocketAddr, every: u64) -> Result<FaultyProxy> {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let proxy = FaultyProxy {
            port,
            requests: Arc::new(AtomicU64::new(0)),
            faults: Arc::new(AtomicU64::new(0)),
            every: Arc::new(AtomicU64::new(every)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let config = Arc::new(
            rustls::ClientConfig::builder()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate))
                .with_no_client_auth(),
        );
        let (requests, faults, every, stop) = (
            Arc::clone(&proxy.requests),
            Arc::clone(&proxy.faults),
            Arc::clone(&proxy.every),
            Arc::clone(&proxy.stop),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let (config, requests, faults, every) = (
                    Arc::clone(&config),
                    Arc::clone(&requests),
                    Arc::clone(&faults),
                    Arc::clone(&every),
                );
                std::thread::spawn(move || {
                    let _ = relay(client, upstream, config, &requests, &faults, &every);
                });
            }
        });
        Ok(proxy)
    }

    /// Changes how often it fails (0: never).
    pub fn set_every(&self, every: u64) {
        self.every.store(every, std::sync::atomic::Ordering::SeqCst);
    }

    /// A copy of `kubeconfig` whose cluster is this proxy (plain HTTP).
    pub fn kubeconfig(&self, kubeconfig: &Path, to: &Path) -> Result<std::path::PathBuf> {
        let text = std::fs::read_to_string(kubeconfig)?;
        let mut config: serde_json::Value = serde_yaml::from_str(&text)?;
        for cluster in config["clusters"].as_array_mut().into_iter().flatten() {
            let c = &mut cluster["cluster"];
            c["server"] = serde_json::json!(format!("http://127.0.0.1:{}", self.port));
            if let Some(map) = c.as_object_mut() {
                map.remove("certificate-authority-data");
                map.remove("certificate-authority");
                map.remove("insecure-skip-tls-verify");
            }
        }
        let path = to.join("proxy.kubeconfig");
        std::fs::write(&path, serde_yaml::to_string(&config)?)?;
        Ok(path)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[derive(Debug)]
struct AnyCertificate;

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A byte stream with a read buffer, for reading HTTP heads and bodies.
struct Buffered<S> {
    inner: S,
    buf: Vec<u8>,
}

impl<S: std::io::Read + std::io::Write> Buffered<S> {
    fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.inner.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// One line with its CRLF; `None` at the end of the stream.
    fn line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(at) = self.buf.iter().position(|b| *b == b'\n') {
                return Ok(Some(self.buf.drain(..=at).collect()));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    fn exact(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// An HTTP head (start line and headers, with the blank line).
    fn head(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut head = Vec::new();
        loop {
            let Some(line) = self.line()? else {
                return Ok(None);
            };
            let blank = line == b"\r\n" || line == b"\n";
            head.extend_from_slice(&line);
            if blank {
                return Ok(Some(head));
            }
        }
    }

    /// Copies a body framed as `head` says to `to`; returns whether the
    /// connection can carry another message.
    fn body(
        &mut self,
        head: &str,
        to: &mut impl std::io::Write,
        response: bool,
    ) -> std::io::Result<bool> {
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_ascii_lowercase())
            })
        };
        if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            loop {
                let size_line = self.line()?.ok_or(std::io::ErrorKind::UnexpectedEof)?;
                to.write_all(&size_line)?;
                let text = String::from_utf8_lossy(&size_line);
                let size = usize::from_str_radix(text.trim().split(';').next().unwrap_or("0"), 16)
                    .map_err(|_| std::io::ErrorKind::InvalidData)?;
                if size == 0 {
                    loop {
                        let line = self.line()?.ok_or(std::io::ErrorKind::UnexpectedEof)?;
                        to.write_all(&line)?;
                        if line == b"\r\n" || line == b"\n" {
                            break;
                        }
                    }
                    to.flush()?;
                    return Ok(true);
                }
                let data = self.exact(size + 2)?;
                to.write_all(&data)?;
                to.flush()?;
            }
        }
        if let Some(length) = header("content-length") {
            let n: usize = length
                .parse()
                .map_err(|_| std::io::ErrorKind::InvalidData)?;
            let data = self.exact(n)?;
            to.write_all(&data)?;
            to.flush()?;
            return Ok(true);
        }
        let status = head.split_whitespace().nth(1).unwrap_or_default();
        if !response || status == "204" || status == "304" || status.starts_with('1') {
            return Ok(true);
        }
        // Until the end of the stream.
        to.write_all(&std::mem::take(&mut self.buf))?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = self.inner.read(&mut chunk)?;
            if n == 0 {
                to.flush()?;
                return Ok(false);
            }
            to.write_all(&chunk[..n])?;
        }
    }
}

fn relay(
    client: std::net::TcpStream,
    upstream: std::net::SocketAddr,
    config: std::sync::Arc<rustls::ClientConfig>,
    requests: &std::sync::atomic::AtomicU64,
    faults: &std::sync::atomic::AtomicU64,
    every: &std::sync::atomic::AtomicU64,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    let mut to_client = client.try_clone()?;
    let mut from_client = Buffered {
        inner: client,
        buf: Vec::new(),
    };
    let mut server: Option<
        Buffered<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>,
    > = None;
    loop {
        let Some(head) = from_client.head()? else {
            return Ok(());
        };
        let head_text = String::from_utf8_lossy(&head).into_owned();
        let mut body = Vec::new();
        from_client.body(&head_text, &mut body, false)?;
        let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
        let every = every.load(Ordering::SeqCst);
        if every > 0 && n.is_multiple_of(every) {
            let k = faults.fetch_add(1, Ordering::SeqCst);
            let (status, reason, extra) = if k.is_multiple_of(2) {
                (429, "Too Many Requests", "Retry-After: 1\r\n")
            } else {
                (503, "Service Unavailable", "")
            };
            let json = format!(
                "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"injected by the test proxy\",\"reason\":\"{}\",\"code\":{status}}}",
                if status == 429 {
                    "TooManyRequests"
                } else {
                    "ServiceUnavailable"
                }
            );
            write!(
                to_client,
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{json}",
                json.len()
            )?;
            to_client.flush()?;
            continue;
        }
        if server.is_none() {
            let tcp = std::net::TcpStream::connect(upstream)?;
            let name = rustls::pki_types::ServerName::IpAddress(upstream.ip().into());
            let connection = rustls::ClientConnection::new(std::sync::Arc::clone(&config), name)
                .map_err(std::io::Error::other)?;
            server = Some(Buffered {
                inner: rustls::StreamOwned::new(connection, tcp),
                buf: Vec::new(),
            });
        }
        let upstream_conn = server.as_mut().expect("connected above");
        upstream_conn.inner.write_all(&head)?;
        upstream_conn.inner.write_all(&body)?;
        upstream_conn.inner.flush()?;
        let Some(answer) = upstream_conn.head()? else {
            return Ok(());
        };
        to_client.write_all(&answer)?;
        let answer_text = String::from_utf8_lossy(&answer).into_owned();
        let more = if head_text.starts_with("HEAD ") {
            true
        } else {
            upstream_conn.body(&answer_text, &mut to_client, true)?
        };
        to_client.flush()?;
        if !more {
            return Ok(());
        }
    }
}

/// A control plane of its own (`scripts/dev-cluster up --instance N` in a
/// state folder of the test), for faults that stop or pause its API server
/// or etcd. Wiped when dropped.
pub struct OwnCluster {
    /// Its state folder (kubeconfig, pid files, logs).
    pub state: std::path::PathBuf,
    instance: u32,
}

impl OwnCluster {
    fn script(state: &Path, instance: u32, command: &str) -> Result<String> {
        let out = Command::new(super::root().join("scripts/dev-cluster"))
            .args([command, "--instance", &instance.to_string()])
            .env("PLUMB_CLUSTER_DIR", state)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("scripts/dev-cluster {command} --instance {instance}"))?;
        anyhow::ensure!(
            out.status.success(),
            "scripts/dev-cluster {command} --instance {instance} failed"
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Starts instance `instance` with its state in `state`.
    pub fn up(state: &Path, instance: u32) -> Result<OwnCluster> {
        let cluster = OwnCluster {
            state: state.to_path_buf(),
            instance,
        };
        OwnCluster::script(state, instance, "up")?;
        Ok(cluster)
    }

    /// Its kubeconfig.
    pub fn kubeconfig(&self) -> std::path::PathBuf {
        self.state.join("kubeconfig")
    }

    /// Its API server's address.
    pub fn api_address(&self) -> std::net::SocketAddr {
        let port = 36443 + 10 * (self.instance as u16 - 1);
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A client of it.
    pub async fn client(&self) -> Result<kube::Client> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        plumb_engine::cluster::connect(Some(&self.kubeconfig()), None)
            .await
            .context("a client of the test's own cluster")
    }

    /// The process id of one of its processes (`etcd`, `kube-apiserver`).
    pub fn pid(&self, name: &str) -> Result<u32> {
        let text = std::fs::read_to_string(self.state.join(format!("{name}.pid")))?;
        Ok(text.trim().parse()?)
    }

    /// Sends a signal (`STOP`, `CONT`, `TERM`) to one of its processes.
    pub fn signal(&self, name: &str, signal: &str) -> Result<()> {
        let pid = self.pid(name)?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -{signal} {name} ({pid})");
        Ok(())
    }

    /// Stops its API server (SIGTERM, waiting until it is gone) and
    /// returns a function that starts it again with the same command line.
    pub fn stop_api_server(&self) -> Result<impl FnOnce() -> Result<()> + use<>> {
        let pid = self.pid("kube-apiserver")?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))?;
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        // SIGTERM; SIGKILL when its graceful shutdown takes over 20 s (it
        // does under load).
        self.signal("kube-apiserver", "TERM")?;
        let start = std::time::Instant::now();
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
        };
        let mut killed = false;
        while alive() {
            if !killed && start.elapsed() > Duration::from_secs(20) {
                self.signal("kube-apiserver", "KILL")?;
                killed = true;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "kube-apiserver does not stop"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let state = self.state.clone();
        Ok(move || {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(state.join("logs/kube-apiserver.log"))?;
            let child = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?;
            // `scripts/dev-cluster down` stops it by this file.
            std::fs::write(state.join("kube-apiserver.pid"), child.id().to_string())?;
            // Not waited for here: `down` ends it.
            std::mem::forget(child);
            Ok(())
        })
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        // A paused etcd would not stop.
        let _ = self.signal("etcd", "CONT");
        let _ = OwnCluster::script(&self.state, self.instance, "down");
    }
}

/// A small tmpfs mounted on a folder (we are root), unmounted when dropped:
/// a data directory whose disk fills up.
pub struct SmallDisk {
    /// The mount point.
    pub path: std::path::PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `megabytes` on `path` (created).
    pub fn mount(path: &Path, megabytes: u64) -> Result<SmallDisk> {
        std::fs::create_dir_all(path)?;
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={megabytes}m"),
                "plumb-test-disk",
            ])
            .arg(path)
            .status()?;
        anyhow::ensure!(status.success(), "mount -t tmpfs on {}", path.display());
        Ok(SmallDisk {
            path: path.to_path_buf(),
        })
    }

    /// Writes a file until the disk is full; returns its path.
    pub fn fill(&self) -> Result<std::path::PathBuf> {
        use std::io::Write;
        let path = self.path.join("filler");
        let mut file = std::fs::File::create(&path)?;
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => return Err(e.into()),
            }
        }
        // What the page cache still holds for it is written now.
        let _ = file.sync_all();
        Ok(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
