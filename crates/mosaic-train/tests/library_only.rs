//! A program that uses the library alone (`default-features = false`) pulls in none of the
//! command's dependencies.

#[path = "../../mosaic-data/tests/common/mod.rs"]
mod common;

#[test]
fn the_library_without_default_features_has_no_command_line_dependencies() {
    let tree = |features: &[&str]| {
        let out = std::process::Command::new(env!("CARGO"))
            .args(["tree", "--offline", "-p", "mosaic-train", "-e", "normal"])
            .args(["--prefix", "none", "--format", "{p}"])
            .args(features)
            .current_dir(common::workspace_root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let names: Vec<String> = text
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(String::from))
            .collect();
        names
    };
    let command = ["clap", "indicatif", "mimalloc"];
    let default = tree(&[]);
    for name in command {
        assert!(
            default.iter().any(|n| n == name),
            "{name} missing: the check is blind"
        );
    }
    let library = tree(&["--no-default-features"]);
    assert!(library.iter().any(|n| n == "burn"), "{library:?}");
    for name in command {
        assert!(
            !library.iter().any(|n| n == name),
            "{name} in the library's tree"
        );
    }
}
