//! Tells the conformance tests whether their third-party data is on this machine
//! (see the `vigil-testkit` crate).

fn main() {
    vigil_testkit::build_script();
}
