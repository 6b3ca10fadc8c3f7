// The HTTP API, as the page uses it: same origin, session cookie, CSRF header, errors as exceptions.

import { currentLanguage, t } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || t("common.httperror", { status }));
    this.status = status;
    this.code = error.code;
    this.field = error.field;
    this.body = body;
  }
}

// No answer at all (offline, the server down, the connection cut): the browser's own words for it
// ("Failed to fetch") say nothing to the person, nor in their language.
export class OfflineError extends Error {
  constructor(message = t("common.offline")) {
    super(message);
    this.offline = true;
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)sendpy_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function api(method, path, body, extraHeaders = {}) {
  const headers = { "Accept-Language": currentLanguage(), ...extraHeaders };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  const raw = body instanceof ArrayBuffer; // a file's bytes (a CSV import), sent as they are
  if (body !== undefined) headers["Content-Type"] = raw ? "text/csv" : "application/json";
  let response, data;
  try {
    response = await fetch(path, {
      method, headers, credentials: "same-origin", body: body === undefined || raw ? body : JSON.stringify(body),
    });
    if (response.status === 204) return null;
    data = response.headers.get("content-type")?.includes("application/json") ? await response.json() : null;
  } catch (error) {
    // fetch rejects only when no answer came; a body cut off half-way is the same to the person.
    if (error instanceof TypeError) throw new OfflineError();
    if (error instanceof SyntaxError) throw new ApiError(response.status, null); // not JSON after all
    throw error;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// Why storage did not take the file, in the reader's words (S3 answers in XML, in English).
function storageRefusal(request) {
  const status = request.status;
  if (status === 403) return t("contacts.storageexpired", { status });
  if (status >= 500) return t("contacts.storagedown", { status });
  return t("contacts.storagerefused", { status });
}

// A presigned POST straight to S3, with progress; resolves when storage has the file.
export function uploadToStorage(form, file, onProgress) {
  return new Promise((resolve, reject) => {
    const data = new FormData();
    for (const [name, value] of Object.entries(form.fields)) data.append(name, value);
    data.append("file", file);
    const request = new XMLHttpRequest();
    request.open("POST", form.url);
    request.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
    request.onload = () => (request.status >= 200 && request.status < 300 ? resolve() : reject(new Error(storageRefusal(request))));
    request.onerror = () => reject(new OfflineError(t("contacts.uploadoffline")));
    request.send(data);
  });
}
