//! `brr image RELEASE`: a release as a reproducible OCI image, written as
//! an OCI image layout folder or an `oci-archive` file.

use std::path::Path;

use brr_release::diff::SpecError;

use super::existing_store;
use crate::cli::ImageFormat;
use crate::output::image::ImageDoc;
use crate::settings::Settings;
use crate::{Failure, exit, output, printer};

pub struct Options<'a> {
    pub output: &'a Path,
    pub format: ImageFormat,
    pub process: Option<&'a str>,
    pub service: Option<&'a str>,
    pub tag: &'a str,
    pub json: bool,
}

fn user_error(message: &str) -> Failure {
    printer::note(&format!("error: {message}"));
    Failure::Exit(exit::USER)
}

fn spec_failure(e: SpecError) -> Failure {
    if e.is_user_error() { user_error(&e.to_string()) } else { Failure::Internal(e.into()) }
}

fn image_failure(e: brr_image::ImageError) -> Failure {
    if e.is_user_error() { user_error(&e.to_string()) } else { Failure::Internal(e.into()) }
}

pub fn run(settings: &Settings, spec: &str, opts: &Options<'_>) -> Result<(), Failure> {
    let store = existing_store(settings)?;
    let side = brr_release::diff::resolve(&store, spec, opts.service).map_err(spec_failure)?;
    if side.label != side.release.to_string() {
        printer::note(&format!("{} is release {}", side.label, side.release));
    }
    let image = brr_image::image(&store, side.release, opts.process).map_err(image_failure)?;
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
