//! Generated flatbuffers code for ringbroker internal messages (see schema/*.fbs).
