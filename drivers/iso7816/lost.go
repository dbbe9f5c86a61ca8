package iso7816

import "errors"

// ErrCardLost is wrapped by Card implementations when the card left the
// field (or stopped answering) during an exchange. Callers branch on it with
// errors.Is to tell "card pulled away" from other I/O failures.
var ErrCardLost = errors.New("iso7816: card left the field")
