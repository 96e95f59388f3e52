//! Bounded fuzzing of what a server's bytes go through: the reply splitter
//! and the listing reader and parsers. Random and near-valid input, cut into
//! random reads; each property says no panic, nothing held or read past the
//! caps, and the same result however the bytes are cut. A few seconds each
//! in a debug build (`cargo test`), so they run on every test run.

use std::io::{self, Read};

use proptest::prelude::*;

use super::listing::{MAX_LISTING_BYTES, MAX_LISTING_LINE, MAX_LISTING_LINES, is_too_large, parse_line, read_listing};
use super::reply::{MAX_REPLY, MAX_REPLY_LINE, Reply, ReplySplitter};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, max_shrink_iters: 200, ..ProptestConfig::default() }
}

/// A line that is a reply line, or nearly one: a code of three digits or
/// not, a separator, text, and a line end or not.
fn reply_line() -> impl Strategy<Value = Vec<u8>> {
    let code = prop_oneof![(100u16..600).prop_map(|c| c.to_string()), "[0-9]{0,4}", "[ -~]{0,3}"];
    let sep = prop_oneof![Just(" "), Just("-"), Just(""), Just("x")];
    let end = prop_oneof![4 => Just("\r\n"), 1 => Just("\n"), 1 => Just("\r"), 1 => Just("")];
    (code, sep, proptest::collection::vec(any::<u8>(), 0..60), end).prop_map(|(code, sep, text, end)| {
        let mut line = format!("{code}{sep}").into_bytes();
        line.extend(text.into_iter().filter(|b| !matches!(b, b'\r' | b'\n')));
        line.extend_from_slice(end.as_bytes());
        line
    })
}

/// Bytes a server might send: reply-like lines, or anything.
fn reply_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(reply_line(), 0..30).prop_map(|lines| lines.concat()),
        proptest::collection::vec(any::<u8>(), 0..2000),
    ]
}

/// Feeds `wire` to a splitter in reads of the sizes `cuts` gives (cycled),
/// taking every reply as it comes. Returns the replies, whether an error
/// ended it, and the splitter.
fn split(wire: &[u8], cuts: &[usize]) -> (Vec<Reply>, bool, ReplySplitter) {
    let mut splitter = ReplySplitter::default();
    let mut out = Vec::new();
    let mut at = 0;
    for cut in cuts.iter().cycle() {
        if at >= wire.len() {
            break;
        }
        let end = (at + cut.max(&1)).min(wire.len());
        splitter.push(&wire[at..end]);
        at = end;
        loop {
            match splitter.next_reply() {
                Ok(Some(reply)) => out.push(reply),
                Ok(None) => break,
                Err(_) => return (out, true, splitter),
            }
        }
        // Nothing held beyond what one reply may have.
        assert!(splitter.held() <= MAX_REPLY, "{} bytes held", splitter.held());
    }
    (out, false, splitter)
}

proptest! {
    #![proptest_config(config(2500))]

    #[test]
    fn replies_come_out_the_same_however_the_bytes_are_cut(
        wire in reply_bytes(),
        cuts in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let (whole, whole_failed, _) = split(&wire, &[wire.len().max(1)]);
        let (cut, cut_failed, rest) = split(&wire, &cuts);
        prop_assert_eq!(whole_failed, cut_failed);
        prop_assert_eq!(whole.len(), cut.len());
        for (a, b) in whole.iter().zip(&cut) {
            prop_assert_eq!(a.code, b.code);
            prop_assert_eq!(&a.text, &b.text);
        }
        let mut taken = 0;
        for reply in &cut {
            prop_assert!((100..600).contains(&reply.code));
            prop_assert!(reply.text.starts_with(reply.code.to_string().as_bytes()));
            prop_assert!(reply.text.ends_with(b"\r\n"));
            taken += reply.text.len();
        }
        if !cut_failed {
            // Every byte is in a reply or still held: none lost, none made up.
            prop_assert_eq!(taken + rest.held(), wire.len());
        }
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn a_reply_without_end_fails_once_it_passes_a_cap(
        start in prop_oneof![Just(&b"213 "[..]), Just(&b"213-x\r\n"[..]), Just(&b""[..])],
        repeat in proptest::collection::vec(any::<u8>(), 1..40),
        cuts in proptest::collection::vec(1usize..8192, 1..4),
    ) {
        let mut wire = start.to_vec();
        while wire.len() < MAX_REPLY + 20_000 {
            wire.extend_from_slice(&repeat);
        }
        let (replies, failed, _) = split(&wire, &cuts);
        // Either it found replies the pattern makes up, or it failed; it never holds more.
        prop_assert!(failed || !replies.is_empty());
        for reply in &replies {
            prop_assert!(reply.text.len() <= MAX_REPLY);
            let longest = reply.text.split(|&b| b == b'\n').map(<[u8]>::len).max().unwrap_or(0);
            prop_assert!(longest <= MAX_REPLY_LINE);
        }
    }
}

/// A line that is a listing line, or nearly one: MLSD facts, `ls -l`, DOS,
/// with random fields.
fn listing_line() -> impl Strategy<Value = String> {
    let name = "[^\r\n]{0,40}";
    let mlsd = ("(type=(file|dir|cdir|pdir|OS.unix=slink);)?(size=[0-9]{0,22};)?(modify=[0-9]{0,16}(\\.[0-9]{0,4})?;)?(perm=[a-z]{0,5};)?", name)
        .prop_map(|(facts, name)| format!("{facts} {name}"));
    let posix = (
        "[-dlcbps?][-rwxsStT]{9}[+@.]?",
        "[0-9]{1,22}",
        "[A-Za-z0-9]{1,8}",
        "(Jan|Feb|Mar|Dec|Foo) {1,2}[0-9]{1,2}",
        "([0-9]{1,5}|[0-9]{1,2}:[0-9]{1,3})",
        name,
    )
        .prop_map(|(mode, size, owner, date, time, name)| {
            format!("{mode} 1 {owner} {owner} {size} {date} {time} {name}")
        });
    let dos = ("[0-9]{1,2}-[0-9]{1,2}-[0-9]{1,4}", "[0-9]{1,2}:[0-9]{1,2}(AM|PM|XM)?", "(<DIR>|[0-9,]{1,22})", name)
        .prop_map(|(date, time, size, name)| format!("{date}  {time}  {size} {name}"));
    prop_oneof![mlsd, posix, dos, "\\PC{0,80}"]
}

/// Reads a listing of `wire`, and counts the bytes taken from it.
struct Counting<'a> {
    wire: &'a [u8],
    read: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (&self.wire[self.read..]).read(buf)?;
        self.read += n;
        Ok(n)
    }
}

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn listing_lines_parse_or_not_without_panicking(line in listing_line(), mlsd in any::<bool>()) {
        if let Some(entry) = parse_line(&line, mlsd) {
            prop_assert!(!entry.name.is_empty() && entry.name != "." && entry.name != "..");
            prop_assert!(!entry.name.contains('/'));
            prop_assert_eq!(entry.exact_time, mlsd);
        }
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn a_listing_of_any_bytes_gives_at_most_one_entry_a_line(
        lines in proptest::collection::vec(listing_line(), 0..20),
        noise in proptest::collection::vec(any::<u8>(), 0..200),
        mlsd in any::<bool>(),
    ) {
        let mut wire = lines.join("\r\n").into_bytes();
        wire.extend_from_slice(&noise);
        let count = wire.split(|&b| b == b'\n').filter(|l| !l.is_empty() && *l != b"\r").count();
        let entries = read_listing(Counting { wire: &wire, read: 0 }, mlsd).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(entries.len() <= count);
    }
}

/// A listing without end: `pattern` again and again.
struct Endless<'a> {
    pattern: &'a [u8],
    at: usize,
    read: u64,
}

impl Read for Endless<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = (self.pattern.len() - self.at).min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&self.pattern[self.at..self.at + n]);
            (filled, self.at) = (filled + n, (self.at + n) % self.pattern.len());
        }
        self.read += buf.len() as u64;
        Ok(buf.len())
    }
}

proptest! {
    #![proptest_config(config(8))]

    #[test]
    fn a_listing_without_end_fails_after_a_bounded_read(
        pattern in prop_oneof![
            // Long lines (few, cheap to parse), or none at all.
            (4usize..16).prop_map(|n| format!("{}\n", "x".repeat(n * 1000)).into_bytes()),
            proptest::collection::vec(any::<u8>().prop_filter("no line end", |b| *b != b'\n'), 1..30),
            // Many lines: the line count stops them.
            Just(b"\r\n".to_vec()),
            Just(b"x\n".to_vec()),
        ],
        mlsd in any::<bool>(),
    ) {
        let mut data = Endless { pattern: &pattern, at: 0, read: 0 };
        let err = read_listing(&mut data, mlsd).err();
        prop_assert!(err.as_ref().is_some_and(is_too_large), "{:?}", err);
        // What was read: up to a cap, and at most one buffer (64 KiB) and one line more.
        let slack = (64 * 1024 + MAX_LISTING_LINE + 3) as u64;
        let per_line = pattern.len() as u64;
        let bound = MAX_LISTING_BYTES.min((MAX_LISTING_LINES as u64 + 1) * per_line.max(1)) + slack;
        prop_assert!(data.read <= bound, "{} bytes read", data.read);
    }
}
