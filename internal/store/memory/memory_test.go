package memory

import (
	"testing"

	"github.com/elevatepdp/elevate/internal/store"
	"github.com/elevatepdp/elevate/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return New(nil) })
}

func TestSecrets(t *testing.T) {
	storetest.RunSecrets(t, New(nil))
}
