//! `EDDY_QUANT_TIER` picks the tier of `type_traits`, and a tier the CPU lacks is ignored.
//!
//! The tier is chosen once per process, so each case runs this test binary again as a child
//! with the variable set (no `set_var` in a multi-threaded test harness).

use std::process::{Command, Stdio};

use eddy_quant::dispatch::{Tier, active_tier, best_supported};

const CHILD: &str = "EDDY_QUANT_TIER_EXPECT";

/// The test binary as a command, started the way cargo started this one: through
/// `EDDY_TEST_RUNNER` if set, else through cargo's runner for this target
/// (`CARGO_TARGET_<TRIPLE>_RUNNER`, e.g. `qemu-aarch64-static` when cross-testing, read from
/// the environment cargo passes on), else directly. A runner may carry arguments
/// (`qemu-aarch64-static -cpu max`).
fn child(exe: &std::path::Path) -> Command {
    let arch = std::env::consts::ARCH.to_uppercase();
    let runner = std::env::var("EDDY_TEST_RUNNER")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| {
            std::env::vars()
                .filter(|(k, v)| {
                    k.starts_with(&format!("CARGO_TARGET_{arch}_"))
                        && k.ends_with("_RUNNER")
                        && !v.trim().is_empty()
                })
                .map(|(_, v)| v)
                .next()
        });
    match runner {
        Some(runner) => {
            let mut words = runner.split_whitespace();
            let mut c = Command::new(words.next().unwrap_or_default());
            c.args(words).arg(exe);
            c
        }
        None => Command::new(exe),
    }
}

#[test]
fn env_override_selects_the_tier() {
    if let Ok(expect) = std::env::var(CHILD) {
        // Child: check the tier this process chose.
        assert_eq!(active_tier().name(), expect);
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    for tier in Tier::ALL {
        let expect = if tier.is_supported() {
            tier
        } else {
            best_supported()
        };
        let status = child(&exe)
            .args([
                "--exact",
                "env_override_selects_the_tier",
                "--test-threads=1",
            ])
            .env("EDDY_QUANT_TIER", tier.name())
            .env(CHILD, expect.name())
            .stdout(Stdio::null())
            .status()
            .expect("run the test binary");
        assert!(
            status.success(),
            "EDDY_QUANT_TIER={tier} should select {expect}"
        );
    }
    let status = child(&exe)
        .args(["--exact", "env_override_selects_the_tier"])
        .env("EDDY_QUANT_TIER", "amx")
        .env(CHILD, best_supported().name())
        .stdout(Stdio::null())
        .status()
        .expect("run the test binary");
    assert!(
        status.success(),
        "an unknown tier name selects the best supported tier"
    );
}

/// With `EDDY_REQUIRE_TIER=<name>` (set by CI for its emulated runs) the named tier must be the
/// active one: a CPU model or detection that silently falls back to a lower tier fails here
/// instead of leaving that tier's kernels untested.
#[test]
fn required_tier_is_active() {
    let Ok(want) = std::env::var("EDDY_REQUIRE_TIER") else {
        return;
    };
    let want = Tier::parse(&want).unwrap_or_else(|| panic!("unknown tier {want:?}"));
    assert!(want.is_supported(), "{want} is not supported by this CPU");
    assert_eq!(active_tier(), want, "EDDY_QUANT_TIER should select {want}");
}

/// With `EDDY_REFUSE_TIER=<name>` (set by CI for a CPU model that lacks the tier, e.g. i8mm on
/// a Cortex-A76) the named tier must be refused: not supported, no kernel table or panel
/// kernels handed out, never active even when `EDDY_QUANT_TIER` asks for it, and the best
/// supported tier below it. (Run it with `EDDY_QUANT_TIER=<name>` and `EDDY_REQUIRE_TIER=` the
/// expected fallback to check the fallback too.)
#[test]
fn refused_tier_is_not_used() {
    let Ok(name) = std::env::var("EDDY_REFUSE_TIER") else {
        return;
    };
    let tier = Tier::parse(&name).unwrap_or_else(|| panic!("unknown tier {name:?}"));
    assert!(!tier.is_supported(), "{tier} is supported by this CPU");
    assert!(eddy_quant::dispatch::type_traits_for(tier, eddy_quant::GgmlType::Q8_0).is_none());
    for ty in [
        eddy_quant::GgmlType::Q4_0,
        eddy_quant::GgmlType::Q4_1,
        eddy_quant::GgmlType::Q4_K,
    ] {
        assert!(
            eddy_quant::panel::panel_kernels_for(tier, ty).is_none(),
            "{tier} {ty}"
        );
    }
    assert_ne!(active_tier(), tier);
    assert!(
        best_supported() < tier,
        "best supported {}",
        best_supported()
    );
}
