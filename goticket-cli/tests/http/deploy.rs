//! What the deployment files invoke exists and works: the commands are read out of the
//! Dockerfile, the Kubernetes manifests and the Compose file, not copied here, and run
//! against this build's binary. Only what a container provides is swapped for its local
//! stand-in: the binary's path, the secrets' mount paths (files in a temporary folder),
//! and the listening address (`0.0.0.0:8080` becomes `127.0.0.1:0`, so tests can run
//! side by side; the health check then asks the port the server chose).

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use super::*;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn yaml(path: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(docs.len(), 1, "{path}: one document");
    docs.remove(0)
}

fn strings(v: &Yaml, what: &str) -> Vec<String> {
    v.as_vec()
        .unwrap_or_else(|| panic!("{what} is not a list: {v:?}"))
        .iter()
        .map(|s| match s {
            Yaml::String(s) => s.clone(),
            Yaml::Integer(i) => i.to_string(),
            other => panic!("{what}: {other:?} is not a string"),
        })
        .collect()
}

/// Where the image puts the binary: the destination of the Dockerfile's COPY of it.
fn image_binary() -> String {
    let text = repo_file("Dockerfile");
    let copy = text
        .lines()
        .find(|l| l.starts_with("COPY --from=build /out/goticket "))
        .expect("the Dockerfile copies the binary from the build stage");
    copy.rsplit(' ').next().expect("a destination").to_owned()
}

/// The container's world, mapped onto a temporary folder.
struct Container {
    dir: tempfile::TempDir,
    /// Container path prefix → local path.
    mounts: Vec<(String, PathBuf)>,
    /// The image's own environment (its ENV lines), under what a manifest adds.
    image_env: Vec<(String, String)>,
    binary: String,
}

impl Container {
    /// A container of the image: its ENV, its /data volume.
    fn new() -> Self {
        let mut c = Container {
            dir: tempfile::tempdir().expect("dir"),
            mounts: Vec::new(),
            image_env: dockerfile_env(&repo_file("Dockerfile")),
            binary: image_binary(),
        };
        c.mount("/data");
        c
    }

    /// Makes the container path `at` a local folder; returns it.
    fn mount(&mut self, at: &str) -> PathBuf {
        let local = self.dir.path().join(format!("m{}", self.mounts.len()));
        std::fs::create_dir_all(&local).expect("mkdir");
        self.mounts.push((at.to_owned(), local.clone()));
        local
    }

    /// A container path as the local path, the binary as this build's.
    fn map(&self, arg: &str) -> String {
        // Compose's `command` runs after the image's ENTRYPOINT, which names the binary.
        if arg == self.binary || arg == "goticket" {
            return BIN.to_owned();
        }
        if arg == "0.0.0.0:8080" {
            return "127.0.0.1:0".to_owned();
        }
        assert!(!arg.starts_with("0.0.0.0:"), "{arg}: the image, its health check and the probes use port 8080");
        for (at, local) in &self.mounts {
            if let Some(rest) = arg.strip_prefix(at.as_str()) {
                return format!("{}{rest}", local.display());
            }
        }
        arg.to_owned()
    }

    fn command(&self, argv: &[String], env: &[(String, String)]) -> Command {
        let mut c = Command::new(self.map(&argv[0]));
        c.args(argv[1..].iter().map(|a| self.map(a)));
        for var in ["GOTICKET_DB", "GOTICKET_DB_FILE", "GOTICKET_JWT_KEY_FILE", "GOTICKET_AS", "GOTICKET_FORMAT"] {
            c.env_remove(var);
        }
        for (k, v) in self.image_env.iter().chain(env) {
            c.env(k, self.map(v));
        }
        c.current_dir(self.dir.path());
        c
    }
}

/// Runs a health check's argv with the server's address (`http://127.0.0.1:PORT`) in
/// place of the container's `http://127.0.0.1:8080`.
fn check(c: &Container, argv: &[String], base: &str) -> Output {
    assert!(argv.iter().any(|a| a.contains("http://127.0.0.1:8080/")), "{argv:?} asks the container's own port");
    let argv: Vec<String> = argv.iter().map(|a| a.replace("http://127.0.0.1:8080", base)).collect();
    c.command(&argv, &[]).output().expect("the health check runs")
}

/// The database URL as a secret holds it (a plain path is no URL).
fn secret_url(db: &TestDb) -> String {
    if db.url.starts_with("postgres") { db.url.clone() } else { format!("sqlite:{}", db.url) }
}

fn key_pem() -> String {
    let out = Command::new(BIN).arg("keygen").output().expect("keygen");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("PEM")
}

/// The Dockerfile's JSON-form instruction `name` (continuation lines joined), after
/// `skip` (like `CMD` inside HEALTHCHECK).
fn dockerfile_json(text: &str, name: &str, skip: &str) -> Vec<String> {
    let joined = text.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("the Dockerfile has no {name}"));
    let json = &line[line.find(skip).unwrap_or_else(|| panic!("{name} has no {skip}")) + skip.len()..];
    serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{name}'s {json:?} is not exec (JSON) form: {e}"))
}

fn dockerfile_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("ENV {kv} is not KEY=value"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The image's default command serves on SQLite under /data, and its HEALTHCHECK
/// passes against it, then fails once the server is gone.
#[test]
fn the_images_command_serves_and_its_health_check_passes() {
    let text = repo_file("Dockerfile");
    let c = Container::new();
    let mut argv = dockerfile_json(&text, "ENTRYPOINT", "ENTRYPOINT");
    argv.extend(dockerfile_json(&text, "CMD", "CMD"));
    let health = dockerfile_json(&text, "HEALTHCHECK", "CMD");
    assert_eq!(health[1], "health", "the health check is `goticket health`: {health:?}");

    let srv = Server::spawn(c.command(&argv, &[]));
    let base = srv.base.clone();
    let out = check(&c, &health, &base);
    assert!(out.status.success(), "{health:?}: {}", String::from_utf8_lossy(&out.stderr));
    let db = c.map("/data/goticket.db");
    assert!(Path::new(&db).is_file(), "the image's default database is on its volume");
    drop(srv);
    let out = check(&c, &health, &base);
    assert_eq!(out.status.code(), Some(1), "a health check of a stopped server fails");
}

/// The migration Job and the Deployment's container, as the manifests say, with the
/// Secret's files and the ConfigMap's environment: the Job migrates the database the
/// Secret names, and the server answers both probes and signs with the Secret's key.
fn the_kubernetes_commands_run(db: &TestDb) {
    let job = yaml("deploy/k8s/migrate-job.yaml");
    let deployment = yaml("deploy/k8s/deployment.yaml");
    let config = yaml("deploy/k8s/configmap.yaml");
    let config_env: Vec<(String, String)> = config["data"]
        .as_hash()
        .expect("ConfigMap data")
        .iter()
        .map(|(k, v)| (k.as_str().expect("key").to_owned(), v.as_str().expect("value").to_owned()))
        .collect();

    // The Secret's keys, as the README tells the operator to create it.
    let readme = repo_file("README.md");
    let keys: Vec<&str> = readme.split("--from-file=").skip(1).filter_map(|rest| rest.split('=').next()).collect();
    assert_eq!(keys, ["database-url", "jwt-key.pem"], "the README's `kubectl create secret` keys");
    for item in job["spec"]["template"]["spec"]["volumes"][0]["secret"]["items"].as_vec().expect("the Job's items") {
        let key = item["key"].as_str().expect("key");
        assert!(keys.contains(&key), "the Job mounts {key}, which the README's Secret does not have");
    }
    let mut c = Container::new();
    for pod in [&job["spec"]["template"]["spec"], &deployment["spec"]["template"]["spec"]] {
        let container = &pod["containers"][0];
        for m in container["volumeMounts"].as_vec().expect("volumeMounts") {
            let at = m["mountPath"].as_str().expect("mountPath");
            if c.mounts.iter().any(|(a, _)| a == at) {
                continue;
            }
            let local = c.mount(at);
            if m["name"].as_str() == Some("secrets") {
                std::fs::write(local.join(keys[0]), format!("{}\n", secret_url(db))).expect("write");
                std::fs::write(local.join(keys[1]), key_pem()).expect("write");
            }
        }
    }
    let env_of = |container: &Yaml| -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some(from) = container["envFrom"].as_vec() {
            assert_eq!(from[0]["configMapRef"]["name"].as_str(), config["metadata"]["name"].as_str());
            env.extend(config_env.iter().cloned());
        }
        for e in container["env"].as_vec().expect("env") {
            env.push((e["name"].as_str().expect("name").to_owned(), e["value"].as_str().expect("value").to_owned()));
        }
        env
    };
    let argv = |container: &Yaml| -> Vec<String> {
        let mut argv = strings(&container["command"], "command");
        argv.extend(strings(&container["args"], "args"));
        argv
    };

    let migrate = &job["spec"]["template"]["spec"]["containers"][0];
    let out = c.command(&argv(migrate), &env_of(migrate)).output().expect("the Job's command runs");
    assert!(out.status.success(), "the migration Job: {}", String::from_utf8_lossy(&out.stderr));
    assert!(db.run(&["event", "list"]).status.success(), "the Job's database has the schema");

    let api = &deployment["spec"]["template"]["spec"]["containers"][0];
    let srv = Server::spawn(c.command(&argv(api), &env_of(api)));
    for probe in ["readinessProbe", "livenessProbe"] {
        let path = api[probe]["httpGet"]["path"].as_str().expect("a probe path");
        assert_eq!(api[probe]["httpGet"]["port"].as_str(), Some("http"));
        let (status, body, _) = srv.call("GET", path, None, None, &[]);
        assert_eq!(status, 200, "{probe} {path}: {body}");
    }
    let port = &api["ports"][0];
    assert_eq!((port["name"].as_str(), port["containerPort"].as_i64()), (Some("http"), Some(8080)));
    // The server signs with the Secret's key: its public half is what JWKS serves.
    let (status, jwks, _) = srv.call("GET", "/.well-known/jwks.json", None, None, &[]);
    assert_eq!((status, jwks["keys"][0]["alg"].as_str()), (200, Some("EdDSA")), "{jwks}");
}
on_both_stores!(the_kubernetes_commands_run);

/// A mapping with its YAML merge key (`<<: *anchor`) applied, as Compose applies it:
/// the mapping's own keys win. (yaml-rust2 resolves the anchor but not the merge.)
fn merged(v: &Yaml) -> Yaml {
    let own = v.as_hash().expect("a mapping");
    let mut all = own.get(&Yaml::String("<<".into())).and_then(Yaml::as_hash).cloned().unwrap_or_default();
    for (k, v) in own {
        if k.as_str() != Some("<<") {
            all.insert(k.clone(), v.clone());
        }
    }
    Yaml::Hash(all)
}

/// Compose's `migrate` service, then its `goticket` service and that service's
/// health check, with the secrets as Compose mounts them.
fn the_compose_commands_run(db: &TestDb) {
    let compose = yaml("deploy/compose/compose.yaml");
    let services = &compose["services"];
    let mut c = Container::new();
    let secrets = c.mount("/run/secrets");
    // Each secret a service lists must be declared from a file that secrets.sh makes.
    let maker = repo_file("deploy/compose/secrets.sh");
    let declared = compose["secrets"].as_hash().expect("top-level secrets");
    let write_secrets = |service: &Yaml| {
        for name in strings(&service["secrets"], "secrets") {
            let file = declared[&Yaml::String(name.clone())]["file"].as_str().expect("a secret from a file");
            let made = file.strip_prefix("./").expect("relative to the Compose file");
            assert!(maker.contains(made), "secrets.sh makes no {made}");
            let text = match name.as_str() {
                "database_url" => format!("{}\n", secret_url(db)),
                "jwt_key" => key_pem(),
                // No broker here: the relay retries in the background; the server serves.
                "relay_url" => "amqp://guest:guest@127.0.0.1:1/%2f\n".to_owned(),
                other => panic!("a secret the test does not know: {other}"),
            };
            std::fs::write(secrets.join(&name), text).expect("write");
        }
    };
    let env_of = |service: &Yaml| -> Vec<(String, String)> {
        service["environment"]
            .as_hash()
            .expect("environment")
            .iter()
            .map(|(k, v)| (k.as_str().expect("key").to_owned(), v.as_str().expect("value").to_owned()))
            .collect()
    };
    let argv = |service: &Yaml| -> Vec<String> {
        let mut argv = vec!["goticket".to_owned()];
        argv.extend(strings(&service["command"], "command"));
        argv
    };

    let migrate = &merged(&services["migrate"]);
    write_secrets(migrate);
    let out = c.command(&argv(migrate), &env_of(migrate)).output().expect("migrate runs");
    assert!(out.status.success(), "Compose's migrate: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        services["goticket"]["depends_on"]["migrate"]["condition"].as_str(),
        Some("service_completed_successfully"),
        "the server starts after the migration succeeded"
    );

    let api = &merged(&services["goticket"]);
    write_secrets(api);
    let srv = Server::spawn(c.command(&argv(api), &env_of(api)));
    let test = strings(&api["healthcheck"]["test"], "healthcheck.test");
    assert_eq!(test[0], "CMD");
    let out = check(&c, &test[1..], &srv.base);
    assert!(out.status.success(), "{test:?}: {}", String::from_utf8_lossy(&out.stderr));
}
on_both_stores!(the_compose_commands_run);

/// `goticket health`: 0 for a 200, 1 for anything else (another status, nothing
/// listening, a server that never answers, within its timeout), 5 for a bad flag; it
/// never opens a database.
#[test]
fn the_health_command_passes_only_a_200_in_time() {
    let dir = tempfile::tempdir().expect("dir");
    let health = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("health")
            .args(args)
            .env_remove("GOTICKET_DB")
            .env_remove("GOTICKET_DB_FILE")
            .current_dir(dir.path())
            .output()
            .expect("runs");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let db = Db::new();
    let srv = Server::start(&db.path.display().to_string());
    let (code, err) = health(&["--url", &format!("{}/healthz", srv.base)]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = health(&["--url", &format!("{}/no/such/page", srv.base)]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("answered 404"), "says what came instead: {err}");

    // A listener that accepts and never answers: the check gives up at its timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/healthz", silent.local_addr().expect("addr"));
    let started = std::time::Instant::now();
    let (code, err) = health(&["--url", &url, "--timeout", "1s"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "bounded by --timeout: {:?}", started.elapsed());
    drop(silent);
    let (code, err) = health(&["--url", &url]);
    assert_eq!(code, Some(1), "nothing listening: {err}");

    for bad in [&["--url", "https://127.0.0.1/healthz"][..], &["--timeout", "0s"], &["--timeout", "soon"]] {
        let (code, err) = health(bad);
        assert_eq!(code, Some(5), "{bad:?}: {err}");
        assert!(err.contains(bad[0]), "{bad:?}: names the flag: {err}");
    }
    assert!(!dir.path().join("goticket.db").exists(), "health opened no database");
}
