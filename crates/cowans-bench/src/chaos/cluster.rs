//! A throw-away Postgres cluster the chaos command starts itself (for the scenarios that stop
//! the server or fill it): `initdb` into a temporary directory, `pg_ctl` on a free loopback
//! port, removed on drop. Run as the `postgres` OS user when this process is root (the server
//! refuses to run as root). Never the developer's server.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

impl Cluster {
    /// Creates and starts a cluster with `max_connections`.
    pub fn start(max_connections: u32) -> anyhow::Result<Cluster> {
        let bin = newest_bin_dir()?;
        let dir =
            std::env::temp_dir().join(format!("cowans-chaos-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let as_postgres = std::fs::metadata("/proc/self")?.uid() == 0;
        let port = free_port()?;
        let cluster = Cluster {
            bin,
            dir,
            port,
            as_postgres,
        };
        if as_postgres {
            cluster.run(Command::new("chown").args(["postgres:postgres", cluster.dir_str()]))?;
        }
        let data = cluster.dir.join("data");
        cluster.pg(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             max_connections = {max_connections}\n",
            cluster.dir_str()
        );
        let conf_path = data.join("postgresql.conf");
        let mut all = std::fs::read_to_string(&conf_path)?;
        all.push_str(&conf);
        std::fs::write(&conf_path, all)?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (`fast`: sessions ended, checkpoint; `immediate`: a crash).
    pub fn stop(&self, mode: &str) -> anyhow::Result<()> {
        self.pg("pg_ctl", &["-D", &self.data(), "-m", mode, "-w", "stop"])
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&self) -> anyhow::Result<()> {
        let log = self.dir.join("server.log");
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                path_str(&log),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    }

    fn data(&self) -> String {
        path_str(&self.dir.join("data")).to_owned()
    }

    fn dir_str(&self) -> &str {
        path_str(&self.dir)
    }

    /// Runs one of the server's programs (as `postgres` when this process is root).
    fn pg(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir(&self.dir);
        self.run(&mut cmd)
    }

    fn run(&self, cmd: &mut Command) -> anyhow::Result<()> {
        let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
        if !out.status.success() {
            bail!(
                "{cmd:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `/usr/lib/postgresql/<newest>/bin` (Debian's layout), or `PG_BINDIR` if set.
fn newest_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql: install the Postgres server or set PG_BINDIR")?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context(
        "no /usr/lib/postgresql/*/bin/initdb: install the Postgres server or set PG_BINDIR",
    )
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}
