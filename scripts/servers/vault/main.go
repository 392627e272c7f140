// Command vault is HashiCorp Vault's CLI and server, built from the pinned
// upstream module so tests can run a real server without a downloaded binary.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
