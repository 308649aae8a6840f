//! Sessions, authorization codes, one-time codes and refresh tokens behind one trait.
