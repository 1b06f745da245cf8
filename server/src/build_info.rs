//! What this binary is: its version, the commit it was built from, the CPU it needs. Release
//! builds target x86-64-v3 (AVX2 and FMA: Intel Haswell, AMD Excavator and newer; see
//! `.cargo/config.toml`); on an older CPU the first vector instruction would kill the process
//! with SIGILL and no word of why, so both binaries check first and say so.

/// `ayush --version` and `ayushctl --version`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("AYUSH_COMMIT"),
    "; built for ",
    env!("AYUSH_TARGET_CPU"),
    "; SQLite and PostgreSQL, TLS by rustls, inference by candle on the CPU)"
);

/// Whether this CPU (and the OS, which must save the AVX registers) runs what the build was
/// compiled for. Asked of the CPU itself with `cpuid` and `xgetbv`: `is_x86_feature_detected!`
/// answers "yes" without asking for any feature the build was compiled with.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
// The only way to ask the CPU; the two instructions read nothing and write only the named
// registers.
#[allow(unsafe_code)]
fn cpu_runs_this_build() -> bool {
    if !cfg!(target_feature = "avx2") && !cfg!(target_feature = "fma") {
        return true;
    }
    let cpuid = |leaf: u32| -> (u32, u32, u32) {
        let (a, b, c): (u32, u32, u32);
        // SAFETY: cpuid exists on every x86-64 CPU and only writes these registers (rbx is
        // reserved by LLVM, hence the exchange).
        unsafe {
            std::arch::asm!(
                "xchg {b:r}, rbx", "cpuid", "xchg {b:r}, rbx",
                b = out(reg) b, inout("eax") leaf => a, inout("ecx") 0u32 => c, out("edx") _,
                options(nostack, preserves_flags),
            );
        }
        (a, b, c)
    };
    let (max_leaf, _, features) = (cpuid(0).0, (), cpuid(1).2);
    let (fma, osxsave, avx) =
        (features & (1 << 12) != 0, features & (1 << 27) != 0, features & (1 << 28) != 0);
    if !(fma && osxsave && avx) || max_leaf < 7 {
        return false;
    }
    let xcr0: u32;
    // SAFETY: xgetbv is available once the OS set OSXSAVE (checked above); it only writes these.
    unsafe {
        std::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") xcr0, out("edx") _, options(nomem, nostack, preserves_flags));
    }
    let os_saves_avx = xcr0 & 0b110 == 0b110;
    let extended = cpuid(7).1;
    let (avx2, bmi2) = (extended & (1 << 5) != 0, extended & (1 << 8) != 0);
    os_saves_avx && avx2 && bmi2
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_runs_this_build() -> bool {
    true
}

/// Exits with a clear message when this CPU cannot run this build. Call it first in `main`.
/// Everything else in the binary may use the newer instructions, so this says what it must with
/// a fixed message through the standard library, which is built for every x86-64 CPU.
#[inline(never)]
pub fn require_cpu() {
    if cpu_runs_this_build() {
        return;
    }
    use std::io::Write;
    const MESSAGE: &str = concat!(
        "this build of Ayush was compiled for ",
        env!("AYUSH_TARGET_CPU"),
        " and needs a CPU with AVX2, FMA and BMI2 (Intel Haswell, AMD Excavator or newer), which \
         this one lacks. Run it on such a machine, or build for this one: \
         RUSTFLAGS=\"-C target-cpu=native\" cargo build --release\n"
    );
    let _ = std::io::stderr().write_all(MESSAGE.as_bytes());
    std::process::exit(1);
}
