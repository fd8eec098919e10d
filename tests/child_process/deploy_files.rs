//! The files in deploy/ (systemd, Docker, Kubernetes) agree with the real
//! binary: flags it accepts, paths it serves, the port, where the config and
//! secrets are mounted, and the shard count.

use std::path::{Path, PathBuf};
use std::process::Command;

use upload_session_exporter::config::{self, ConfigError, Environment};
use yaml_rust2::{Yaml, YamlLoader};

const BIN: &str = env!("CARGO_BIN_EXE_upload_session_exporter");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn yaml(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `doc.a.b.c` by keys (numbers index arrays).
fn at<'a>(y: &'a Yaml, path: &str) -> &'a Yaml {
    path.split('.').fold(y, |y, k| match k.parse::<usize>() {
        Ok(i) => &y[i],
        Err(_) => &y[k],
    })
}

fn s<'a>(y: &'a Yaml, path: &str) -> &'a str {
    at(y, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string: {:?}", at(y, path)))
}

/// Flags the binary accepts, from its --help.
fn accepted_flags() -> Vec<String> {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    help.split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| {
            w.trim_end_matches(',')
                .split('=')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

fn check_args(args: &[String], what: &str) {
    let flags = accepted_flags();
    for a in args {
        let flag = a.split('=').next().unwrap();
        assert!(
            flags.iter().any(|f| f == flag),
            "{what}: {flag} is not a flag of the binary ({flags:?})"
        );
    }
}

struct NoEnv;
impl Environment for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

fn workloads() -> Vec<(&'static str, Yaml)> {
    vec![
        (
            "deploy/kubernetes/deployment.yaml",
            yaml("deploy/kubernetes/deployment.yaml").remove(0),
        ),
        (
            "deploy/kubernetes/statefulset.yaml",
            yaml("deploy/kubernetes/statefulset.yaml").remove(0),
        ),
    ]
}

#[test]
fn kubernetes_workloads_match_the_binary() {
    let configmap = yaml("deploy/kubernetes/configmap.yaml").remove(0);
    let toml = configmap["data"]["upload_session_exporter.toml"]
        .as_str()
        .expect("ConfigMap holds upload_session_exporter.toml");
    for (file, w) in workloads() {
        let c = at(&w, "spec.template.spec.containers.0");
        let args: Vec<String> = at(c, "args")
            .as_vec()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        check_args(&args, file);
        let port = at(c, "ports.0.containerPort").as_i64().unwrap();
        assert_eq!(port, 10157, "{file}");
        assert!(
            args.contains(&format!("--web.listen-address=:{port}")),
            "{file}: {args:?}"
        );
        assert_eq!(s(c, "livenessProbe.httpGet.path"), "/-/healthy", "{file}");
        assert_eq!(s(c, "readinessProbe.httpGet.path"), "/-/ready", "{file}");
        assert_eq!(s(c, "livenessProbe.httpGet.port"), s(c, "ports.0.name"));
        assert!(at(&w, "spec.template.spec.securityContext.runAsNonRoot")
            .as_bool()
            .unwrap());
        assert!(!at(c, "securityContext.allowPrivilegeEscalation")
            .as_bool()
            .unwrap());
        assert!(at(c, "securityContext.readOnlyRootFilesystem")
            .as_bool()
            .unwrap());
        assert!(
            at(c, "resources.limits.memory").as_str().is_some(),
            "{file}: memory limit"
        );
        assert!(
            at(c, "resources.requests.cpu").as_str().is_some(),
            "{file}: cpu request"
        );

        // The config file the args name is where the ConfigMap is mounted,
        // and the secret file the config names is where the Secret is.
        let config_arg = args
            .iter()
            .find_map(|a| a.strip_prefix("--config.file="))
            .unwrap();
        let mounts = at(c, "volumeMounts").as_vec().unwrap();
        let mount_of = |vol: &str| {
            mounts
                .iter()
                .find(|m| s(m, "name") == vol)
                .map(|m| s(m, "mountPath").to_string())
                .unwrap()
        };
        assert_eq!(
            Path::new(config_arg).parent().unwrap(),
            Path::new(&mount_of("config")),
            "{file}"
        );
        let key = Path::new(config_arg).file_name().unwrap().to_str().unwrap();
        assert!(
            !configmap["data"][key].is_badvalue(),
            "ConfigMap has no key {key}"
        );
        match config::parse_str(toml, "configmap", &NoEnv) {
            Err(ConfigError::Invalid { problems, .. }) => {
                assert_eq!(problems.len(), 1, "{problems:?}");
                assert_eq!(problems[0].key, "targets[0].password_file");
                let secret_dir = mount_of("secrets");
                assert!(
                    problems[0]
                        .message
                        .contains(&format!("{secret_dir}/vault-prod-password")),
                    "{problems:?}"
                );
            }
            other => panic!("configmap config: {other:?}"),
        }
        let labels = at(&w, "spec.template.metadata.labels");
        let selector = at(&w, "spec.selector.matchLabels");
        assert_eq!(labels, selector, "{file}");
    }

    // Shards: COUNT equals the replicas.
    let sts = yaml("deploy/kubernetes/statefulset.yaml").remove(0);
    let replicas = at(&sts, "spec.replicas").as_i64().unwrap();
    let env = at(&sts, "spec.template.spec.containers.0.env")
        .as_vec()
        .unwrap();
    let shard = env
        .iter()
        .find(|e| s(e, "name") == "UPLOAD_SESSION_EXPORTER_SHARD")
        .map(|e| s(e, "value"))
        .unwrap();
    assert_eq!(shard, format!("ordinal/{replicas}"));
    upload_session_exporter::shard::Shard::parse(shard, Some("upload-session-exporter-2")).unwrap();
}

#[test]
fn service_and_servicemonitor_select_the_pods() {
    let svc = yaml("deploy/kubernetes/service.yaml").remove(0);
    let sm = yaml("deploy/kubernetes/servicemonitor.yaml").remove(0);
    let pod_labels = at(&workloads()[0].1, "spec.template.metadata.labels").clone();
    for (k, v) in at(&svc, "spec.selector").as_hash().unwrap() {
        assert_eq!(&pod_labels[k.as_str().unwrap()], v);
    }
    assert_eq!(s(&svc, "spec.ports.0.targetPort"), "http-metrics");
    assert_eq!(
        s(&sm, "spec.endpoints.0.port"),
        s(&svc, "spec.ports.0.name")
    );
    assert_eq!(s(&sm, "spec.endpoints.0.path"), "/metrics");
    // The job label the alert rules select on.
    let rules = read("deploy/prometheus/upload_session_alerts.yml");
    assert!(rules.contains("job=\"upload_session_exporter\""));
    assert_eq!(s(&sm, "spec.endpoints.0.relabelings.0.targetLabel"), "job");
    assert_eq!(
        s(&sm, "spec.endpoints.0.relabelings.0.replacement"),
        "upload_session_exporter"
    );
    for (k, v) in at(&sm, "spec.selector.matchLabels").as_hash().unwrap() {
        assert_eq!(&at(&svc, "metadata.labels")[k.as_str().unwrap()], v);
    }
    let kustom = yaml("deploy/kubernetes/kustomization.yaml").remove(0);
    for r in at(&kustom, "resources").as_vec().unwrap() {
        assert!(
            root()
                .join("deploy/kubernetes")
                .join(r.as_str().unwrap())
                .is_file(),
            "{r:?}"
        );
    }
    // The example Secret provides the key the config reads.
    let secret = yaml("deploy/kubernetes/secret.example.yaml").remove(0);
    assert!(at(&secret, "stringData.vault-prod-password")
        .as_str()
        .is_some());
}

#[test]
fn dockerfile_runs_the_real_binary_as_non_root() {
    let df = read("deploy/docker/Dockerfile");
    let cargo = read("Cargo.toml");
    let stages = df.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "multi-stage build");
    let final_stage = &df[df.rfind("\nFROM ").unwrap()..];
    let user = final_stage
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "{user}"
    );
    let entry = final_stage
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .unwrap();
    let entry: Vec<String> = serde_json::from_str(entry).unwrap();
    let bin = Path::new(&entry[0]).file_name().unwrap().to_str().unwrap();
    assert!(
        cargo.contains(&format!("name = \"{bin}\"")),
        "{bin} is a [[bin]] of Cargo.toml"
    );
    assert!(final_stage.contains(&format!("/src/target/release/{bin} {}", entry[0])));
    let cmd = final_stage
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .unwrap();
    let cmd: Vec<String> = serde_json::from_str(cmd).unwrap();
    check_args(&cmd, "Dockerfile CMD");
    assert!(final_stage.contains("EXPOSE 10157"));
    // What the build stage copies exists.
    for l in df
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        for src in l
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .split_last()
            .unwrap()
            .1
        {
            assert!(root().join(src).exists(), "COPY source {src} missing");
        }
    }
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let unit = read("deploy/systemd/upload_session_exporter.service");
    for needle in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LoadCredential=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(unit.contains(needle), "unit lacks {needle:?}");
    }
    // Flags of ExecStart exist.
    // ExecStart and its continuation lines (ending in a backslash).
    let mut exec = String::new();
    for l in unit.split("ExecStart=").nth(1).unwrap().lines() {
        exec.push_str(l.trim_end_matches('\\'));
        exec.push(' ');
        if !l.trim_end().ends_with('\\') {
            break;
        }
    }
    let args: Vec<String> = exec
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(str::to_string)
        .collect();
    assert!(args.len() >= 2, "{exec}");
    check_args(&args, "systemd ExecStart");

    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        if std::env::var_os("CI").is_some() {
            panic!("systemd-analyze is required in CI");
        }
        eprintln!("SKIPPED: systemd-analyze not found; install Debian's systemd package");
        return;
    };
    assert!(out.status.success());
    // verify needs the binary at the ExecStart path: point it at ours.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upload_session_exporter.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/upload_session_exporter", BIN),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let about_unit: Vec<&str> = msg
        .lines()
        .filter(|l| l.contains("upload_session_exporter.service"))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify:\n{msg}"
    );
}
