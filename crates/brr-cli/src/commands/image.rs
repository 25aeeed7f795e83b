//! `brr image RELEASE`: a release as a reproducible OCI image, written as
//! an OCI image layout folder or an `oci-archive` file, and `brr push
//! RELEASE REF`: that image sent to a registry.

use std::path::Path;

use brr_release::diff::SpecError;

use super::{existing_store, user_error};
use crate::cli::{Command, ImageFormat};
use crate::output::image::{ImageDoc, PushDoc};
use crate::settings::Settings;
use crate::{Failure, exit, output, printer};

pub struct Options<'a> {
    pub output: &'a Path,
    pub format: ImageFormat,
    pub process: Option<&'a str>,
    pub service: Option<&'a str>,
    pub tag: &'a str,
    pub base: Option<&'a str>,
    pub plain_http: bool,
    pub json: bool,
}

fn spec_failure(e: SpecError) -> Failure {
    if e.is_user_error() { user_error(&e.to_string(), None) } else { Failure::Internal(e.into()) }
}

fn image_failure(e: brr_image::ImageError) -> Failure {
    match e {
        // The registry's answer is the message; brr did not fail.
        brr_image::ImageError::Registry { .. } | brr_image::ImageError::Base { .. } => {
            printer::note(&format!("error: {e}"));
            Failure::Exit(exit::FAILED)
        }
        e if e.is_user_error() => user_error(&e.to_string(), None),
        e => Failure::Internal(e.into()),
    }
}

/// `brr image` or `brr push`.
pub fn dispatch(settings: &Settings, command: Command) -> Result<(), Failure> {
    match command {
        Command::Image { release, output, format, process, service, tag, base, plain_http, json } => {
            let (process, service, base) = (process.as_deref(), service.as_deref(), base.as_deref());
            let opts = Options { output: &output, format, process, service, tag: &tag, base, plain_http, json };
            run(settings, &release, &opts)
        }
        Command::Push { release, reference, process, service, base, plain_http, json } => {
            let (process, service, base) = (process.as_deref(), service.as_deref(), base.as_deref());
            push(settings, &release, &reference, &PushOptions { process, service, base, plain_http, json })
        }
        _ => unreachable!("`dispatch` takes `image` and `push`"),
    }
}

/// The image of the release `spec` names.
fn image_of(
    settings: &Settings,
    spec: &str,
    service: Option<&str>,
    process: Option<&str>,
    base: Option<(&str, bool)>,
) -> Result<(brr_release::diff::Side, brr_image::Image, Option<brr_image::base::Base>), Failure> {
    let base_ref = base.map(|(b, _)| brr_image::push::Reference::parse(b)).transpose().map_err(image_failure)?;
    let store = existing_store(settings)?;
    let side = brr_release::diff::resolve(&store, spec, service).map_err(spec_failure)?;
    if side.label != side.release.to_string() {
        printer::note(&format!("{} is release {}", side.label, side.release));
    }
    let base = match (base_ref, base) {
        (Some(r), Some((_, plain_http))) => {
            let pulled = brr_image::base::pull(&r, plain_http).map_err(image_failure)?;
            printer::note(&format!("base {r} is {}", pulled.by_digest));
            Some(pulled)
        }
        _ => None,
    };
    let image = brr_image::image(&store, side.release, process, base.as_ref()).map_err(image_failure)?;
    Ok((side, image, base))
}

pub fn run(settings: &Settings, spec: &str, opts: &Options<'_>) -> Result<(), Failure> {
    let base = opts.base.map(|b| (b, opts.plain_http));
    let (side, image, base) = image_of(settings, spec, opts.service, opts.process, base)?;
    let format = match opts.format {
        ImageFormat::OciLayout => {
            brr_image::layout::write_dir(&image, opts.tag, opts.output).map_err(image_failure)?;
            "oci-layout"
        }
        ImageFormat::OciArchive => {
            brr_image::layout::write_archive(&image, opts.tag, opts.output).map_err(image_failure)?;
            "oci-archive"
        }
    };
    if opts.json {
        return output::print(&ImageDoc {
            release: side.release.into(),
            build: image.release.build.into(),
            config: image.release.config.into(),
            process: image.process.clone(),
            output: opts.output.display().to_string(),
            format: format.to_owned(),
            tag: opts.tag.to_owned(),
            manifest_digest: image.manifest.digest.to_string(),
            config_digest: image.config.digest.to_string(),
            layers: image.layers.iter().map(|l| l.digest.to_string()).collect(),
            base: base.map(|b| b.by_digest),
        });
    }
    printer::note(&format!(
        "wrote {format} `{}` (tag `{}`, entrypoint: `{}` process, {} layer{})",
        opts.output.display(),
        opts.tag,
        image.process,
        image.layers.len(),
        if image.layers.len() == 1 { "" } else { "s" }
    ));
    println!("{}", image.manifest.digest);
    Ok(())
}

pub struct PushOptions<'a> {
    pub process: Option<&'a str>,
    pub service: Option<&'a str>,
    pub base: Option<&'a str>,
    pub plain_http: bool,
    pub json: bool,
}

/// `brr push RELEASE REF`.
pub fn push(settings: &Settings, spec: &str, reference: &str, opts: &PushOptions<'_>) -> Result<(), Failure> {
    let to = brr_image::push::Reference::parse(reference).map_err(image_failure)?;
    let base = opts.base.map(|b| (b, opts.plain_http));
    let (side, image, _) = image_of(settings, spec, opts.service, opts.process, base)?;
    // Beside the store's other derived data: deleting it loses only mounts.
    let seen = settings.store.join("cache").join("registry-blobs");
    let pushed = brr_image::push::push(&image, &to, opts.plain_http, Some(&seen)).map_err(image_failure)?;
    if opts.json {
        let strings = |d: &[brr_image::OciDigest]| d.iter().map(ToString::to_string).collect();
        return output::print(&PushDoc {
            release: side.release.into(),
            reference: pushed.reference,
            manifest_digest: pushed.digest.to_string(),
            uploaded: strings(&pushed.uploaded),
            mounted: strings(&pushed.mounted),
            present: strings(&pushed.present),
        });
    }
    printer::note(&format!(
        "pushed {}:{} ({} blob{} uploaded, {} mounted from another repository, {} already there)",
        to.repo,
        to.tag,
        pushed.uploaded.len(),
        if pushed.uploaded.len() == 1 { "" } else { "s" },
        pushed.mounted.len(),
        pushed.present.len()
    ));
    println!("{}", pushed.reference);
    Ok(())
}
