//! Image references, locations and platforms: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = archgate::image::ImageRef::parse(s);
        let _ = archgate::image::Location::parse(s);
        if let Ok(p) = archgate::platform::Platform::parse(s) {
            // A parsed platform prints to something that parses to itself.
            let again = archgate::platform::Platform::parse(&p.to_string()).expect("round trip");
            assert!(again.matches(&p));
        }
        let _ = archgate::platform::parse_list(s);
    }
});
