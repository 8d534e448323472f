//! The built-in rules (`content/rules`), embedded at build time: `RULES` holds each
//! rule file as (name, text), `TESTS` the test-case files kept beside them.

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));
