//! Tuning profiles, system check and iotune.
