//! Work in progress: filled in by the hl7-parse helper.
