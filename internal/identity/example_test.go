package identity_test

import (
	"context"
	"fmt"

	"github.com/elevatepdp/elevate/internal/identity"
)

// A gateway authenticates with a static token; only its hash is configured.
func ExampleAuthenticator_Authenticate() {
	token := "elv_example-token" // in practice from identity.NewToken()
	a, err := identity.New(context.Background(), identity.Config{
		StaticTokens: []identity.StaticToken{
			{Name: "edge-gateway", Kind: identity.Client, SHA256: identity.HashToken(token)},
		},
	})
	if err != nil {
		panic(err)
	}

	id, err := a.Authenticate(context.Background(), "Bearer "+token)
	fmt.Println(id.Principal, id.Kind, id.Method, err)

	_, err = a.Authenticate(context.Background(), "Bearer elv_guess")
	fmt.Println(err)
	// Output:
	// edge-gateway client static <nil>
	// unauthenticated: unknown token
}

func ExampleHashToken() {
	fmt.Println(identity.HashToken("abc"))
	// Output: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
}
