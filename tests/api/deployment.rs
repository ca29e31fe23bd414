//! The deployment material tells the truth: the sample `deploy/rssp.toml` names every setting rssp reads,
//! each with a value rssp accepts, and the LICENSE is the one Cargo.toml declares.

use std::collections::BTreeSet;

use rssp::config::Config;

const SAMPLE: &str = include_str!("../../deploy/rssp.toml");

/// The sample with every `#name = value` setting (and the lines of a commented multi-line array)
/// uncommented.
fn uncommented_sample() -> String {
    let mut out = String::new();
    let mut in_array = false;
    for line in SAMPLE.lines() {
        let setting = line.strip_prefix('#').filter(|rest| {
            let starts_setting = rest.split_once(" = ").is_some_and(|(name, _)| {
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            });
            starts_setting || in_array
        });
        match setting {
            Some(rest) => {
                if rest.trim_end().ends_with('[') {
                    in_array = true;
                } else if rest.trim() == "]" {
                    in_array = false;
                }
                out.push_str(rest);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn parse_sample(text: &str) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rssp.toml");
    std::fs::write(&file, text).unwrap();
    Config::from_sources(Some(&file), &[]).map_err(|e| e.to_string())
}

/// The fields a table accepts, read from the configuration's own refusal of an unknown field
/// ("unknown field `x`, expected one of `a`, `b`").
fn accepted_fields(table: Option<&str>) -> BTreeSet<String> {
    let probe = match table {
        None => "rssp_probe_field = 1\n".to_string(),
        Some(table) => format!("[{table}]\nrssp_probe_field = 1\n"),
    };
    let err = parse_sample(&probe).expect_err("an unknown field is refused");
    let expected = err.split("expected one of").nth(1).or_else(|| err.split("expected").nth(1)).unwrap_or_else(|| {
        panic!("no list of fields in {err:?}");
    });
    expected.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

#[test]
fn the_sample_configuration_parses_with_every_setting_uncommented() {
    let text = uncommented_sample();
    let config = parse_sample(&text).unwrap_or_else(|e| panic!("deploy/rssp.toml, uncommented: {e}\n{text}"));
    // Spot checks that the uncommenting really happened.
    assert_eq!(config.hsm.ca_token_label.as_deref(), Some("rssp-ca"));
    assert_eq!(config.lifecycle.packages.len(), 3);
}

#[test]
fn the_sample_configuration_names_every_setting() {
    let sample: toml::Table = uncommented_sample().parse().expect("the uncommented sample is TOML");
    let top_level: BTreeSet<String> = sample.keys().cloned().collect();
    let accepted = accepted_fields(None);
    assert_eq!(top_level, accepted, "top-level settings in deploy/rssp.toml vs. rssp's");
    for (name, value) in &sample {
        if let toml::Value::Table(table) = value {
            let keys: BTreeSet<String> = table.keys().cloned().collect();
            assert_eq!(keys, accepted_fields(Some(name)), "settings of [{name}] in deploy/rssp.toml vs. rssp's");
        }
    }
}

#[test]
fn every_environment_variable_the_sample_names_is_one_rssp_reads() {
    let names: BTreeSet<&str> = SAMPLE
        .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|word| word.starts_with("RSSP_") && word.len() > 5)
        .collect();
    assert!(names.len() > 20, "the sample names the environment variables: {names:?}");
    for name in names {
        if name == "RSSP_CONFIG" || name == "RSSP_LOG" || name == "RSSP_LOG_FORMAT" {
            continue;
        }
        let env = vec![(name.to_string(), "1".to_string())];
        if let Err(e) = Config::from_sources(None, &env) {
            assert!(!e.to_string().contains("unknown setting"), "{name}: {e}");
        }
    }
}

#[test]
fn the_license_file_is_the_one_cargo_declares() {
    let cargo = include_str!("../../Cargo.toml");
    let license = include_str!("../../LICENSE");
    assert!(cargo.contains("license = \"Apache-2.0\""));
    assert!(license.contains("Apache License") && license.contains("Version 2.0, January 2004"));
}
