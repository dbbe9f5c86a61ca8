package revocation

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"

	"github.com/kazashi/kazashi/firmware/atomicfile"
)

// stateFile persists, per series, the highest cRLNumber ever imported, so
// that an older CRL replayed after a restart (or after its index was
// deleted) is refused.
const stateFile = "state.json"

type state struct {
	Version int                     `json:"version"`
	Series  map[string]*seriesState `json:"series"`
}

type seriesState struct {
	Highest *big.Int `json:"highest"`
	SHA256  string   `json:"sha256"` // of the CRL with that number
}

func loadState(dir string) (*state, error) {
	st := &state{Version: 1, Series: map[string]*seriesState{}}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("revocation: state: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil || st.Version != 1 || st.Series == nil {
		// Refuse rather than forget: a forgotten replay guard would
		// accept an old CRL.
		return nil, fmt.Errorf("revocation: %s is corrupt (remove it only if you trust every CRL you will import next): %v", filepath.Join(dir, stateFile), err)
	}
	return st, nil
}

func (st *state) raise(id string, n *big.Int, sha string) {
	if s := st.Series[id]; s == nil || s.Highest.Cmp(n) < 0 {
		st.Series[id] = &seriesState{Highest: n, SHA256: sha}
	}
}

func (st *state) save(dir string) error {
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), b, 0o640)
}
