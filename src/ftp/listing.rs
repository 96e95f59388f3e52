//! Directory listings: MLSD, Unix LIST and DOS LIST lines into entries.

use super::RemoteEntry;

/// Parses listing lines (MLSD, or Unix / Windows LIST) into entries; lines
/// that parse as none of them, and `.`/`..`, are left out.
///
/// The format follows the command: suppaftp's MLSD parser accepts any line
/// without `; ` (as a name), so LIST lines must never go through it.
pub fn parse_listing(lines: &[String], mlsd: bool) -> Vec<RemoteEntry> {
    use suppaftp::list::ListParser;
    lines
        .iter()
        .filter_map(|line| {
            let f = if mlsd {
                ListParser::parse_mlsd(line).ok()?
            } else {
                ListParser::parse_posix(line).or_else(|_| ListParser::parse_dos(line)).ok()?
            };
            let name = f.name().to_string();
            if name == "." || name == ".." || name.is_empty() {
                return None;
            }
            Some(RemoteEntry {
                name,
                is_file: f.is_file(),
                size: f.size() as u64,
                modified: Some(f.modified()),
                exact_time: mlsd,
            })
        })
        .collect()
}
