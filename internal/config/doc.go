// Package config is the typed registry of topic and broker configuration:
// every key with its type, default, validator, the broker setting it falls
// back to (Kafka's "synonym"), and whether it can change at run time. It also
// loads the broker's static configuration from defaults, a properties file,
// STRATA_* environment variables and flags, in that order of precedence.
//
// It is a leaf package: standard library only.
package config
