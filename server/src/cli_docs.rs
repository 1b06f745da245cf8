//! Man pages and shell completions, generated from the same clap definitions the binaries parse
//! with, so they cannot drift from what the commands accept. Packages install them; admins
//! building from source run `ayush man DIR` and `ayushctl man DIR`.

use std::path::{Path, PathBuf};

/// Writes `NAME.1` for `cmd` and `NAME-SUB….1` for each visible subcommand, however deep, into
/// `dir` (created if missing). Returns the files written.
pub fn write_man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let name = cmd.get_name().to_string();
    page(cmd, &name, dir, &mut written)?;
    Ok(written)
}

fn page(cmd: clap::Command, name: &str, dir: &Path, written: &mut Vec<PathBuf>) -> Result<(), String> {
    // The page is titled by the full command ("ayushctl-user-create"), as git's are.
    let cmd = cmd.name(name.to_string());
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut text).map_err(|e| format!("{name}: {e}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        page(sub.clone(), &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

/// Prints the completion script for `shell` to standard output.
pub fn print_completions(mut cmd: clap::Command, shell: clap_complete::Shell) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, &mut std::io::stdout());
}
