//! Platforms (`os/arch[/variant]`): parsing, normalisation, matching, ELF
//! identity and QEMU user-mode binary names. (Being written.)
