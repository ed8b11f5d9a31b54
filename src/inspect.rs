//! `archgate inspect`: what a location points at. (Being written.)
