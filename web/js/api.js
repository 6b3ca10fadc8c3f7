// The HTTP API, as the page uses it: same origin, session cookie, CSRF header, errors as exceptions.

import { currentLanguage } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code;
    this.field = error.field;
    this.body = body;
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
  const response = await fetch(path, {
    method, headers, credentials: "same-origin", body: body === undefined || raw ? body : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const data = response.headers.get("content-type")?.includes("application/json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
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
    request.onload = () => (request.status >= 200 && request.status < 300 ? resolve() : reject(new Error(`storage answered ${request.status}`)));
    request.onerror = () => reject(new Error("the upload failed; check your connection"));
    request.send(data);
  });
}
