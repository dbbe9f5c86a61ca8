package tap

import (
	"fmt"

	"github.com/kazashi/kazashi/firmware/holder"
)

// Messages shown to the person at the kiosk, English then Japanese. They
// say what was checked and what to do next, never more than the profile
// proved, and never a secret or personal data.
const (
	MessageReady   = "Place your My Number Card on the reader. / マイナンバーカードを読み取り部に置いてください。"
	MessageReading = "Reading. Please keep the card still. / 読み取り中です。カードを動かさないでください。"
	MessageFault   = "The reader is not available. Please ask the staff. / 読み取り機が使えません。係員にお知らせください。"
	// MessageNotSaved: the tap's result could not be recorded, so it is
	// not shown: the backend will not receive it.
	MessageNotSaved = "Your card was read, but this kiosk could not save the result, so nothing was sent. Please take your card and ask the staff. / カードは読み取りましたが、この端末で結果を保存できなかったため、送信されていません。カードをお取りになり、係員にお知らせください。"
)

// credentialName names a credential for the holder.
func credentialName(k holder.Kind) (en, ja string) {
	switch k {
	case holder.AuthPIN:
		return "4-digit PIN for user authentication", "利用者証明用暗証番号（数字4桁）"
	case holder.SignPassword:
		return "signature password (6 to 16 letters and digits)", "署名用電子証明書の暗証番号（英数字6〜16文字）"
	case holder.CollationB:
		return "14-digit number from the card face (birth date YYMMDD in the Japanese era, expiry year, 4-digit security code)", "照合番号B（生年月日6桁・有効期限の西暦4桁・セキュリティコード4桁）"
	case holder.SupportPIN:
		return "4-digit PIN for the card information input support", "券面事項入力補助用暗証番号（数字4桁）"
	}
	return string(k), string(k)
}

// InputMessage asks for a secret; the card stays on the reader.
func InputMessage(k holder.Kind, tries int) string {
	en, ja := credentialName(k)
	return fmt.Sprintf("Keep the card on the reader and enter your %s on the PIN pad (%d tries left). / カードを置いたまま、%sを入力してください（残り%d回）。", en, tries, ja, tries)
}

// okMessage says exactly what an accepted tap of each profile checked.
var okMessage = map[string]string{
	ProfileCardCheck:  "The certificate on your card is valid. This kiosk did not check that the card itself is genuine. Please take your card. / カードの電子証明書は有効です（カード自体が本物かどうかは確認していません）。カードをお取りください。",
	ProfileFaceCheck:  "This is a genuine My Number Card and its certificate is valid. Staff will compare your face with the photo. Please take your card. / 本物のマイナンバーカードであり、電子証明書が有効であることを確認しました。顔写真の確認は係員が行います。カードをお取りください。",
	ProfilePINAuth:    "Your PIN was confirmed by the card and its certificate is valid. Please take your card. / カードで暗証番号を確認し、電子証明書が有効であることを確認しました。カードをお取りください。",
	ProfileSign:       "Your electronic signature was made and your signature certificate is valid. Please take your card. / 電子署名を行い、署名用電子証明書が有効であることを確認しました。カードをお取りください。",
	ProfileAttributes: "The information on your card was read and its integrity confirmed. Please take your card. / カードの記載事項を読み取り、改ざんがないことを確認しました。カードをお取りください。",
	ProfileRegister:   "Registration done: your PIN and your electronic signature were confirmed. Please take your card. / 暗証番号と電子署名を確認し、登録しました。カードをお取りください。",
}

// ResultMessage tells the person what happened and what to do next.
func ResultMessage(ev Event) string {
	if ev.Reason == ReasonOK {
		if m, ok := okMessage[ev.Profile]; ok {
			return m
		}
	}
	en, ja := credentialName(holder.Kind(ev.Credential))
	tries := 0
	if ev.TriesLeft != nil {
		tries = *ev.TriesLeft
	}
	switch ev.Reason {
	case ReasonWrongSecret:
		return fmt.Sprintf("The %s was not correct. %d tries left. Take the card and place it again to retry; when no tries are left the card locks and only your municipal office can unlock it. / %sが違います（残り%d回）。もう一度カードを置いてやり直してください。回数を使い切るとロックされ、市区町村の窓口でのみ解除できます。", en, tries, ja, tries)
	case ReasonTriesFloor:
		return fmt.Sprintf("Only %d tries are left for the %s. To protect your card, this kiosk will not ask for it. Please ask the staff or your municipal office. / %sの残り回数が%d回のため、カード保護のためこの端末では入力できません。係員または市区町村の窓口にお問い合わせください。", tries, en, ja, tries)
	case ReasonBlocked:
		return fmt.Sprintf("The %s is locked. Your municipal office can unlock it. Please take your card and ask the staff. / %sがロックされています。市区町村の窓口で解除できます。カードをお取りになり、係員にお知らせください。", en, ja)
	case ReasonCancelled:
		return "Cancelled. Nothing was sent to the card. Please take your card. / 取り消しました。カードには何も送っていません。カードをお取りください。"
	case ReasonInputTimeout:
		return "No input was received in time. Please take your card and place it again. / 入力がありませんでした。カードをもう一度置いてください。"
	case ReasonNotGenuine:
		return "This card could not be confirmed as a genuine My Number Card. Please take your card and ask the staff. / 本物のマイナンバーカードであることを確認できませんでした。カードをお取りになり、係員にお知らせください。"
	case ReasonFaceMismatch:
		return "The number entered does not match this card. Please take your card and ask the staff. / 入力された番号がカードの記載と一致しません。カードをお取りになり、係員にお知らせください。"
	case ReasonCVAnchorUnknown:
		return "This card cannot be checked at this kiosk. Please ask the staff. / この端末ではこのカードを確認できません。係員にお知らせください。"
	case ReasonNoSignCert:
		return "This card has no signature certificate (for example, cards issued under age 15). Please ask the staff. / このカードには署名用電子証明書がありません（15歳未満で発行されたカードなど）。係員にお知らせください。"
	case ReasonIntegrity:
		return "The information on this card could not be confirmed. Please take your card and ask the staff. / カードの記載事項を確認できませんでした。カードをお取りになり、係員にお知らせください。"
	case ReasonUndelivered:
		return "Your card was checked, but the result could not be passed to the counter. Please ask the staff. / 確認はできましたが、結果を窓口に渡せませんでした。係員にお知らせください。"
	}
	return Message(ev.Reason)
}

// Message tells the person what happened for the reasons every profile
// shares (card and certificate checks).
func Message(reason string) string {
	switch reason {
	case ReasonRemoved:
		return "The card was moved away too soon. Please place it again and hold it still. / カードが離れました。もう一度置いて、そのままお待ちください。"
	case ReasonIO:
		return "The card could not be read. Please place it again. / 読み取れませんでした。もう一度置いてください。"
	case ReasonUnsupported:
		return "This card cannot be used here. Please use your My Number Card. / このカードは使えません。マイナンバーカードをお使いください。"
	case ReasonPINRequired:
		return "This device needs a PIN, which this kiosk does not ask for. Please use the card itself or ask the staff. / 暗証番号が必要です。カードをお使いいただくか、係員にお知らせください。"
	case "expired":
		return "The certificate on this card has expired. Please ask the staff; it can be renewed at your municipal office. / 電子証明書の有効期限が切れています。係員にお知らせください。"
	case "crl-unavailable", "crl-stale":
		return "Cards cannot be checked right now. Please ask the staff. / ただいま確認できません。係員にお知らせください。"
	}
	return "This card could not be confirmed. Please take your card and ask the staff. / 確認できませんでした。カードをお取りになり、係員にお知らせください。"
}
