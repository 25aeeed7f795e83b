//! `-march=native` and its kin compile for the CPU of the machine that
//! builds: the same sources and flags make another program on another CPU
//! model. When a builder's argv or env asks for it, the host CPU's model and
//! feature flags (from `/proc/cpuinfo`) enter the build key.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The flags that tune code to the building CPU.
const NATIVE_FLAGS: [&str; 3] = ["-march=native", "-mtune=native", "-mcpu=native"];

/// Where a builder asks for code tuned to this CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeFlag {
    pub flag: &'static str,
    /// `None`: in the builder's argv; else the env variable's name.
    pub env: Option<String>,
}

impl std::fmt::Display for NativeFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.env {
            Some(name) => write!(f, "`{name}` has `{}`", self.flag),
            None => write!(f, "the builder has `{}`", self.flag),
        }
    }
}

/// The first native-tuning flag in `builder` or in a value of `env`, as a
/// word (`CFLAGS="-O2 -march=native"` counts; `-march=native2` does not).
pub fn native_flag(builder: &[String], env: &BTreeMap<String, String>) -> Option<NativeFlag> {
    let has = |text: &str| {
        text.split(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | ',' | ';'))
            .find_map(|w| NATIVE_FLAGS.iter().find(|f| **f == w).copied())
    };
    builder
        .iter()
        .find_map(|a| has(a))
        .map(|flag| NativeFlag { flag, env: None })
        .or_else(|| env.iter().find_map(|(k, v)| Some(NativeFlag { flag: has(v)?, env: Some(k.clone()) })))
}

/// What identifies a CPU in `/proc/cpuinfo` text: the first processor's
/// model name and its feature flags, sorted (`model name: …; flags: …`).
/// Other fields (MHz, core ids, bugs) change from boot to boot or between
/// cores and make no other program. `None` when it has neither.
pub fn cpu_identity(cpuinfo: &str) -> Option<String> {
    let first = cpuinfo.split("\n\n").next().unwrap_or("");
    let field = |names: &[&str]| {
        first.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            names.contains(&k.trim()).then(|| v.trim().to_owned())
        })
    };
    // x86 says `model name` and `flags`; Arm `CPU implementer`/`CPU part`
    // and `Features`; others `cpu model`/`cpu`.
    let model = field(&["model name"])
        .or_else(|| Some(format!("{} {}", field(&["CPU implementer"])?, field(&["CPU part"])?)))
        .or_else(|| field(&["cpu model", "cpu", "Processor"]));
    let flags = field(&["flags", "Features", "isa"]).map(|f| {
        let mut f: Vec<&str> = f.split_whitespace().collect();
        f.sort_unstable();
        f.dedup();
        f.join(" ")
    });
    if model.is_none() && flags.is_none() {
        return None;
    }
    Some(format!("model name: {}; flags: {}", model.unwrap_or_default(), flags.unwrap_or_default()))
}

/// A [`cpu_identity`] in short: its model and how many feature flags.
pub fn describe(identity: &str) -> String {
    let Some(rest) = identity.strip_prefix("model name: ") else { return identity.to_owned() };
    let (model, flags) = rest.split_once("; flags: ").unwrap_or((rest, ""));
    format!("{model} ({} feature flags)", flags.split_whitespace().count())
}

/// Why `pkg`'s key includes this machine's CPU, when it does: `the key
/// includes this machine's CPU: MODEL (N feature flags) because `CFLAGS`
/// has `-march=native``.
pub fn note(builder: &[String], env: &BTreeMap<String, String>) -> Option<String> {
    let flag = native_flag(builder, env)?;
    Some(format!("the key includes this machine's CPU: {} because {flag}", describe(&host_cpu())))
}

/// This machine's [`cpu_identity`], read once per run.
pub fn host_cpu() -> String {
    static CPU: OnceLock<String> = OnceLock::new();
    CPU.get_or_init(|| {
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| cpu_identity(&t))
            .unwrap_or_else(|| format!("unknown {} CPU", std::env::consts::ARCH))
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    const X86: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\
        cpu MHz\t\t: 2199.998\nflags\t\t: fpu sse2 avx2 fpu\nbugs\t\t: spectre_v1\n\n\
        processor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\ncpu MHz\t\t: 2200.001\nflags\t\t: fpu\n";

    #[test]
    fn identity_is_model_and_sorted_flags_of_the_first_cpu() {
        assert_eq!(cpu_identity(X86).unwrap(), "model name: Intel(R) Xeon(R) CPU @ 2.20GHz; flags: avx2 fpu sse2");
        let faster = X86.replace("2199.998", "3000.000");
        assert_eq!(cpu_identity(&faster), cpu_identity(X86), "the clock speed makes no other program");
        let other = X86.replace("avx2 ", "");
        assert_ne!(cpu_identity(&other), cpu_identity(X86), "a missing feature does");
        let arm = "processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n";
        assert_eq!(cpu_identity(arm).unwrap(), "model name: 0x41 0xd0c; flags: asimd fp");
        assert_eq!(cpu_identity("nothing here"), None);
    }

    #[test]
    fn native_flags_are_found_as_words() {
        let env = |v: &str| BTreeMap::from([("CFLAGS".to_owned(), v.to_owned())]);
        let argv = |a: &str| vec!["sh".to_owned(), "-c".to_owned(), a.to_owned()];
        let found = native_flag(&argv("true"), &env("-O2 -march=native")).unwrap();
        assert_eq!(found.to_string(), "`CFLAGS` has `-march=native`");
        let found = native_flag(&argv("cc -mtune=native -c a.c"), &BTreeMap::new()).unwrap();
        assert_eq!(found.to_string(), "the builder has `-mtune=native`");
        assert_eq!(native_flag(&argv("cc -march=native2"), &env("-march=x86-64-v3")), None);
        assert!(native_flag(&argv("true"), &env("'-mcpu=native'")).is_some());
    }
}
