//! The ELF identity reader on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ident) = archgate::verify::elf::parse_ident(data) {
        let _ = ident.to_string();
        for p in archgate::platform::Platform::supported() {
            let _ = archgate::verify::elf::check(&ident, &p);
        }
    }
});
