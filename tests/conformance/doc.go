// Package conformance hosts a plugin binary the way Vault does and checks it against the protocol.
package conformance
