// Images attached to a message in the composer: chosen with the file picker or pasted, uploaded
// at once over HTTP (POST, multipart), then named by id in the `send` frame (docs/protocol.md).

const ACCEPTED = ["image/png", "image/jpeg", "image/webp", "image/gif"];

/** Thumbnails of a message's images; each links to the full image (served to its owner only). */
export function renderImages(messageEl, attachments) {
  const main = messageEl.querySelector(".message-main") || messageEl;
  main.querySelector(".message-images")?.remove();
  if (!attachments || attachments.length === 0) return;
  const strip = document.createElement("div");
  strip.className = "message-images";
  for (const attachment of attachments) {
    const link = document.createElement("a");
    link.href = attachment.url;
    link.target = "_blank";
    link.rel = "noopener";
    const img = document.createElement("img");
    img.className = "message-image";
    img.dataset.testid = "message-image";
    img.src = attachment.url;
    img.alt = "Attached image";
    img.loading = "lazy";
    if (attachment.width && attachment.height) {
      img.width = attachment.width;
      img.height = attachment.height;
    }
    link.append(img);
    strip.append(link);
  }
  main.insertBefore(strip, main.querySelector(".message-body"));
}

/** The images waiting in the composer: uploads in flight and uploaded ones, with their previews. */
export class AttachmentTray {
  constructor({ tray, picker, button, uploadUrl, csrfToken, onChange, onError }) {
    this.tray = tray;
    this.picker = picker;
    this.uploadUrl = uploadUrl;
    this.csrfToken = csrfToken;
    this.onChange = onChange;
    this.onError = onError;
    /** {file, previewUrl, attachment (once uploaded), el} */
    this.items = [];
    this.uploading = 0;
    button?.addEventListener("click", () => picker.click());
    picker.addEventListener("change", () => {
      this.addFiles([...picker.files]);
      picker.value = "";
    });
  }

  /** Upload each file now; the send waits until every one is stored. */
  addFiles(files) {
    for (const file of files) {
      if (!ACCEPTED.includes(file.type)) {
        this.onError(`${file.name || "That file"} is not a PNG, JPEG, WebP or GIF image.`);
        continue;
      }
      const item = { file, previewUrl: URL.createObjectURL(file), attachment: null, el: null };
      this.items.push(item);
      this.render();
      this.upload(item);
    }
  }

  async upload(item) {
    this.uploading += 1;
    this.onChange();
    const body = new FormData();
    body.append("file", item.file);
    try {
      const response = await fetch(this.uploadUrl, {
        method: "POST",
        body,
        headers: { Accept: "application/json", "X-CSRFToken": this.csrfToken() },
        credentials: "same-origin",
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(data?.error?.message || "The image could not be uploaded.");
      item.attachment = data;
    } catch (error) {
      this.remove(item);
      this.onError(error.message || "The image could not be uploaded.");
    } finally {
      this.uploading -= 1;
      this.render();
      this.onChange();
    }
  }

  remove(item) {
    this.items = this.items.filter((other) => other !== item);
    URL.revokeObjectURL(item.previewUrl);
    this.render();
    this.onChange();
  }

  busy() {
    return this.uploading > 0;
  }

  /** The uploaded images, as the send frame and the optimistic bubble need them. */
  ready() {
    return this.items.filter((item) => item.attachment).map((item) => item.attachment);
  }

  clear() {
    for (const item of this.items) URL.revokeObjectURL(item.previewUrl);
    this.items = [];
    this.render();
    this.onChange();
  }

  render() {
    this.tray.replaceChildren();
    this.tray.hidden = this.items.length === 0;
    for (const item of this.items) {
      const chip = document.createElement("div");
      chip.className = "composer-attachment";
      chip.dataset.testid = "composer-attachment";
      chip.dataset.state = item.attachment ? "ready" : "uploading";
      const img = document.createElement("img");
      img.src = item.previewUrl;
      img.alt = item.file.name || "Image to send";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "composer-attachment-remove";
      remove.setAttribute("aria-label", "Remove image");
      remove.textContent = "×";
      remove.addEventListener("click", () => this.remove(item));
      chip.append(img, remove);
      this.tray.append(chip);
    }
  }
}
