//! Every misuse of `#[liveview_handler]` and `html!` has a clear compile
//! error, and only that one: for the attribute, the item stays as written,
//! so no cascade follows.

#[test]
fn misuse_is_a_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
