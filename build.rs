//! Generates include/rstcp.h from the extern "C" functions in src/ffi/,
//! and gives librstcp.so its SONAME.
//! The header is committed; it is rewritten only when its content changes,
//! so an unchanged header does not trigger rebuilds.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // librstcp.so is installed as librstcp.so.<version> with the SONAME
    // librstcp.so.<major>, which programs linked against it record. Not
    // rustc-cdylib-link-arg: cargo passes that on to every cdylib that
    // depends on this crate, and librstcp_preload.so would get this SONAME
    // too. rustc-link-arg stays in this package (tests get it too, harmlessly).
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    println!("cargo:rustc-link-arg=-Wl,-soname,librstcp.so.{major}");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(Path::new(&dir).join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let bindings = match cbindgen::Builder::new()
        .with_config(config)
        .with_src(Path::new(&dir).join("src/ffi/mod.rs"))
        .generate()
    {
        Ok(b) => b,
        Err(e) => {
            println!("cargo:warning=cbindgen failed, include/rstcp.h not updated: {e}");
            return;
        }
    };
    let mut text = Vec::new();
    bindings.write(&mut text);
    let out = Path::new(&dir).join("include/rstcp.h");
    if std::fs::read(&out).ok().as_deref() != Some(&text[..]) {
        let _ = std::fs::create_dir_all(out.parent().expect("has a parent"));
        std::fs::write(&out, &text).expect("include/ is writable");
    }
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out_dir).join("rstcp.h"), &text).expect("OUT_DIR is writable");
}
