//! The manifest parser (`core::manifest::parse_manifest`) on any text: it never panics, a
//! refusal names at least one problem, and an accepted manifest holds what the parser
//! promises: 1 to `MANIFEST_JOBS_MAX` jobs with unique keys, dependencies before dependents,
//! and every job one that a single submission of the same spec would accept unchanged.
#![no_main]

use std::collections::HashSet;

use gigafactory_core::manifest::{MANIFEST_JOBS_MAX, parse_job_spec_json, parse_manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let manifest = match parse_manifest(text) {
        Ok(m) => m,
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a refusal names its problems");
            return;
        }
    };
    assert!(!manifest.jobs.is_empty() && manifest.jobs.len() <= MANIFEST_JOBS_MAX);
    let mut seen = HashSet::new();
    for spec in &manifest.jobs {
        for dep in &spec.deps {
            assert!(seen.contains(dep.as_str()), "{dep} comes after {}", spec.key);
        }
        assert!(seen.insert(spec.key.as_str()), "key {} twice", spec.key);
        let json = serde_json::to_string(spec).expect("a spec serializes");
        match parse_job_spec_json(&json) {
            Ok(again) => assert_eq!(&again, spec, "a single submission reads it back"),
            Err(e) => panic!("the manifest accepted {json} but a submission refuses it: {e}"),
        }
    }
});
