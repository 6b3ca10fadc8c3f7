// Copies the browser builds of the npm packages the site uses into vendor/, served as is.
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("vendor", { recursive: true });
copyFileSync("node_modules/squire-rte/dist/squire.js", "vendor/squire.js");
copyFileSync("node_modules/dompurify/dist/purify.min.js", "vendor/purify.min.js");
console.log("vendor/: squire.js, purify.min.js");
