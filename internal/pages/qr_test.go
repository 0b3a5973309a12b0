package pages

import (
	"image"
	"image/color"
	"regexp"
	"strconv"
	"testing"

	"github.com/makiuchi-d/gozxing"
	gzqr "github.com/makiuchi-d/gozxing/qrcode"
)

// TestQRCodeScans: the SVG we draw, rasterized module by module, is read
// back by an independent QR decoder (ZXing's) as the text it encodes.
func TestQRCodeScans(t *testing.T) {
	text := "otpauth://totp/tokend:ann%40example.com?algorithm=SHA1&digits=6&issuer=tokend&period=30&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	svg, err := QRCode(text)
	if err != nil {
		t.Fatal(err)
	}
	vb := regexp.MustCompile(`viewBox="0 0 (\d+) (\d+)"`).FindStringSubmatch(string(svg))
	if vb == nil {
		t.Fatalf("no viewBox in %.80s", svg)
	}
	size, _ := strconv.Atoi(vb[1])
	const scale = 4
	img := image.NewGray(image.Rect(0, 0, size*scale, size*scale))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	modules := regexp.MustCompile(`M(\d+) (\d+)h1v1h-1z`).FindAllStringSubmatch(string(svg), -1)
	if len(modules) < 100 {
		t.Fatalf("%d dark modules", len(modules))
	}
	for _, m := range modules {
		x, _ := strconv.Atoi(m[1])
		y, _ := strconv.Atoi(m[2])
		for dy := range scale {
			for dx := range scale {
				img.SetGray(x*scale+dx, y*scale+dy, color.Gray{})
			}
		}
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := gzqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("the QR code does not scan: %v", err)
	}
	if res.GetText() != text {
		t.Fatalf("scanned %q, want %q", res.GetText(), text)
	}
}
