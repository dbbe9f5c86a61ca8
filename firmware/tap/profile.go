package tap

// Service profiles: what the kiosk reads and proves on every tap. The
// README's table says, for each, what it proves and what it does not.
const (
	ProfileCardCheck  = "card-check"
	ProfileFaceCheck  = "face-check"
	ProfilePINAuth    = "pin-auth"
	ProfileSign       = "sign"
	ProfileAttributes = "attributes"
	ProfileRegister   = "register"
)

// Profiles returns every profile name, card-check first.
func Profiles() []string {
	return []string{ProfileCardCheck, ProfileFaceCheck, ProfilePINAuth, ProfileSign, ProfileAttributes, ProfileRegister}
}

// Assurance is what an accepted tap proved; every other outcome carries
// AssuranceNone.
type Assurance string

// Assurance levels, one per profile.
const (
	AssuranceNone             Assurance = "none"
	AssuranceCertificateRead  Assurance = "certificate-read"  // a valid certificate was read; a copy would pass
	AssuranceGenuineCard      Assurance = "genuine-card"      // a genuine J-LIS chip, in the same RF session as a valid certificate
	AssurancePossessionProven Assurance = "possession-proven" // the card's authentication key signed a fresh nonce after the PIN
	AssuranceSigned           Assurance = "signed"            // the holder's signature key signed the document digest
	AssuranceAttributesRead   Assurance = "attributes-read"   // basic 4 information read, its integrity record verified
	AssuranceRegistered       Assurance = "registered"        // pin-auth and sign in one session
)

// Profile configures the service profile of a pipeline.
type Profile struct {
	// Name is one of the Profile… constants; empty means card-check.
	Name string
	// Service is the pseudonym domain: card_id and card_key_id are keyed
	// per service, so two services of one deployment cannot join their
	// records. Empty means "default".
	Service string
	// TriesFloor: no secret is presented when the card reports fewer tries
	// left (default 2).
	TriesFloor int
	// IndividualNumberPermitted lets the attributes profile read the
	// individual number (only for a service the My Number Act permits).
	IndividualNumberPermitted bool
}

// Assurance returns what an accepted tap of this profile proves.
func (pr Profile) Assurance() Assurance {
	switch pr.Name {
	case ProfileFaceCheck:
		return AssuranceGenuineCard
	case ProfilePINAuth:
		return AssurancePossessionProven
	case ProfileSign:
		return AssuranceSigned
	case ProfileAttributes:
		return AssuranceAttributesRead
	case ProfileRegister:
		return AssuranceRegistered
	}
	return AssuranceCertificateRead
}

func (p *Pipeline) profile() Profile {
	pr := p.Profile
	if pr.Name == "" {
		pr.Name = ProfileCardCheck
	}
	if pr.Service == "" {
		pr.Service = "default"
	}
	if pr.TriesFloor == 0 {
		pr.TriesFloor = 2
	}
	return pr
}

// flows maps each profile to its flow (flows.go). Every flow runs in one
// card session, stops at the first failure and leaves the reason in the
// event.
var flows = map[string]func(*flow){
	ProfileCardCheck:  cardCheck,
	ProfileFaceCheck:  faceCheck,
	ProfilePINAuth:    pinAuth,
	ProfileSign:       signFlow,
	ProfileAttributes: attributesFlow,
	ProfileRegister:   registerFlow,
}
