//! The CPU identity of a binary: the few ELF header fields that say which
//! machine, word size and byte order it was built for.
//!
//! Only the identification bytes and `e_machine` are read (20 bytes); nothing
//! else of the file is trusted or parsed.

use std::io::Read;
use std::path::Path;

use crate::platform::{ElfIdentity, Platform};

/// `\x7fELF`.
const MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
/// Bytes needed: `e_ident` (16) + `e_type` (2) + `e_machine` (2).
const HEADER_LEN: usize = 20;

/// Reads the ELF identity of the file at `path`.
pub fn read_ident(path: &Path) -> Result<ElfIdentity, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let mut buf = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(format!("cannot be read: {e}")),
        }
    }
    parse_ident(&buf[..got])
}

/// Parses the identity from the first bytes of a file.
pub fn parse_ident(bytes: &[u8]) -> Result<ElfIdentity, String> {
    if bytes.len() < 4 || bytes[..4] != MAGIC {
        let shown = if bytes.starts_with(b"#!") {
            "a script (starts with #!)".to_string()
        } else {
            let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
            format!(
                "starts with {}",
                if head.is_empty() {
                    "nothing".into()
                } else {
                    head.join(" ")
                }
            )
        };
        return Err(format!("is not an ELF binary ({shown})"));
    }
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "has a truncated ELF header ({} bytes)",
            bytes.len()
        ));
    }
    let class64 = match bytes[4] {
        1 => false,
        2 => true,
        other => {
            return Err(format!(
                "has an invalid ELF class {other} (expected 1 or 2)"
            ));
        }
    };
    let little_endian = match bytes[5] {
        1 => true,
        2 => false,
        other => {
            return Err(format!(
                "has an invalid ELF data encoding {other} (expected 1 or 2)"
            ));
        }
    };
    let raw = [bytes[18], bytes[19]];
    let machine = if little_endian {
        u16::from_le_bytes(raw)
    } else {
        u16::from_be_bytes(raw)
    };
    Ok(ElfIdentity {
        machine,
        class64,
        little_endian,
    })
}

/// Whether a binary with this identity runs on `platform`; `Err` says what
/// was found and what the platform needs.
pub fn check(ident: &ElfIdentity, platform: &Platform) -> Result<(), String> {
    let Some(want) = platform.elf() else {
        return Err(format!(
            "archgate has no ELF facts for {platform}; found {ident} (use runner = \"static\" checks on known platforms only)"
        ));
    };
    if *ident == want {
        Ok(())
    } else {
        Err(format!("built for {ident}, but {platform} needs {want}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{EM_AARCH64, EM_MIPS, EM_S390, EM_X86_64};

    fn header(class: u8, data: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', class, data, 1, 0];
        h.resize(16, 0);
        let m = if data == 2 {
            machine.to_be_bytes()
        } else {
            machine.to_le_bytes()
        };
        h.extend_from_slice(&[2, 0]); // e_type (byte order irrelevant here)
        h.extend_from_slice(&m);
        h
    }

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn the_three_target_cpus_are_told_apart() {
        let amd64 = parse_ident(&header(2, 1, EM_X86_64)).unwrap();
        let arm64 = parse_ident(&header(2, 1, EM_AARCH64)).unwrap();
        let mips = parse_ident(&header(2, 1, EM_MIPS)).unwrap();
        assert!(check(&amd64, &p("linux/amd64")).is_ok());
        assert!(check(&arm64, &p("linux/arm64")).is_ok());
        assert!(check(&mips, &p("linux/mips64le")).is_ok());
        let e = check(&amd64, &p("linux/arm64")).unwrap_err();
        assert!(
            e.contains("x86-64") && e.contains("AArch64") && e.contains("linux/arm64"),
            "{e}"
        );
    }

    #[test]
    fn word_size_and_byte_order_matter_not_just_the_machine() {
        // 32-bit MIPS (o32) and big-endian mips64 are not mips64le.
        let mips32 = parse_ident(&header(1, 1, EM_MIPS)).unwrap();
        let mips64be = parse_ident(&header(2, 2, EM_MIPS)).unwrap();
        assert!(
            check(&mips32, &p("linux/mips64le"))
                .unwrap_err()
                .contains("32-bit")
        );
        assert!(
            check(&mips64be, &p("linux/mips64le"))
                .unwrap_err()
                .contains("big-endian")
        );
        let s390 = parse_ident(&header(2, 2, EM_S390)).unwrap();
        assert!(
            check(&s390, &p("linux/s390x")).is_ok(),
            "big-endian machine read in its own order"
        );
    }

    #[test]
    fn bogus_headers_are_errors_not_panics() {
        assert!(parse_ident(b"").unwrap_err().contains("not an ELF"));
        assert!(parse_ident(b"#!/bin/sh\n").unwrap_err().contains("script"));
        assert!(
            parse_ident(b"\x7fELF\x02")
                .unwrap_err()
                .contains("truncated")
        );
        let mut bad_class = header(2, 1, EM_X86_64);
        bad_class[4] = 9;
        assert!(parse_ident(&bad_class).unwrap_err().contains("class 9"));
        let mut bad_data = header(2, 1, EM_X86_64);
        bad_data[5] = 0;
        assert!(parse_ident(&bad_data).unwrap_err().contains("encoding 0"));
    }

    #[test]
    fn reads_the_running_test_binary() {
        let me = std::env::current_exe().unwrap();
        let ident = read_ident(&me).unwrap();
        assert!(check(&ident, &Platform::host()).is_ok(), "{ident}");
    }
}
