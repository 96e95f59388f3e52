//! Directory listings: MLSD, Unix LIST and DOS LIST lines into entries,
//! read from the data connection with bounds a server cannot push past.

use std::io::{self, BufRead, BufReader, Read};

use super::RemoteEntry;

/// The longest listing line taken: an MLSD line with every fact and a name
/// of 255 bytes is well under 1 KiB.
pub(super) const MAX_LISTING_LINE: usize = 16 * 1024;

/// The most lines one listing may have (entries, and lines that parse as
/// none). Bounds the memory the entries take (about 100 MB with names of
/// 100 bytes) and the time spent parsing what a server sends.
pub(super) const MAX_LISTING_LINES: usize = 500_000;

/// The most bytes one listing may have.
pub(super) const MAX_LISTING_BYTES: u64 = 128 * 1024 * 1024;

/// A listing past one of the bounds above: the error inside an
/// [`io::ErrorKind::InvalidData`] error of [`read_listing`].
#[derive(Debug)]
pub(super) struct ListingTooLarge(pub(super) String);

impl std::fmt::Display for ListingTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ListingTooLarge {}

/// Whether `e` says a listing was too large (see [`ListingTooLarge`]).
pub(super) fn is_too_large(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<ListingTooLarge>())
}

/// Reads a listing from its data connection, line by line, into entries
/// (see [`parse_line`]); fails with [`ListingTooLarge`] as soon as it
/// passes a bound, without reading further.
pub(super) fn read_listing(data: impl Read, mlsd: bool) -> io::Result<Vec<RemoteEntry>> {
    let too_large = |what: String| io::Error::new(io::ErrorKind::InvalidData, ListingTooLarge(what));
    let mut reader = BufReader::with_capacity(64 * 1024, data);
    let mut line = Vec::new();
    let mut entries = Vec::new();
    let (mut lines, mut bytes) = (0usize, 0u64);
    loop {
        line.clear();
        // Room for the longest line and its CRLF, and one byte to tell a
        // line that is longer.
        let room = (MAX_LISTING_LINE + 3) as u64;
        let n = (&mut reader).take(room).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.len() > MAX_LISTING_LINE {
            return Err(too_large(format!("a line longer than {} KiB", MAX_LISTING_LINE / 1024)));
        }
        lines += 1;
        bytes += n as u64;
        if lines > MAX_LISTING_LINES {
            return Err(too_large(format!("more than {MAX_LISTING_LINES} lines")));
        }
        if bytes > MAX_LISTING_BYTES {
            return Err(too_large(format!("more than {} MiB", MAX_LISTING_BYTES >> 20)));
        }
        if text.is_empty() {
            continue;
        }
        entries.extend(parse_line(&String::from_utf8_lossy(text), mlsd));
    }
    Ok(entries)
}

/// Parses one listing line (MLSD, or Unix / Windows LIST) into an entry;
/// a line that parses as none of them, and `.`/`..`, give none.
///
/// The format follows the command: suppaftp's MLSD parser accepts any line
/// without `; ` (as a name), so LIST lines must never go through it.
pub(super) fn parse_line(line: &str, mlsd: bool) -> Option<RemoteEntry> {
    use suppaftp::list::ListParser;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_with_either_line_end_and_empty_ones_skipped() {
        let wire = b"type=file;size=3;modify=20200102030405; a b\r\n\r\ntype=dir;modify=20200102030405; d\n";
        let entries = read_listing(&wire[..], true).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a b", "d"]);
        assert!(entries[0].is_file && !entries[1].is_file);
    }

    #[test]
    fn a_line_of_the_longest_length_is_taken_and_one_byte_more_is_not() {
        let name = "n".repeat(MAX_LISTING_LINE - "type=file;size=1; ".len());
        let ok = format!("type=file;size=1; {name}\r\n");
        assert_eq!(read_listing(ok.as_bytes(), true).unwrap().len(), 1);
        let long = format!("type=file;size=1; {name}x\r\n");
        let e = read_listing(long.as_bytes(), true).unwrap_err();
        assert!(is_too_large(&e), "{e}");
    }
}
