// Small progressive enhancements; every page works without JavaScript. Each module enhances
// the page it finds its elements on, and does nothing elsewhere.
import { enhanceForms } from "./forms.js";
import { enhanceChat } from "./chat.js";
import { enhanceDictation } from "./dictate.js";
import { enhanceUploads } from "./uploads.js";
import { enhanceTheme } from "./theme.js";
import { enhanceModels } from "./models.js";
import { enhanceNav } from "./nav.js";
import { enhanceTables } from "./tables.js";

enhanceForms();
enhanceChat();
enhanceDictation();
enhanceUploads();
enhanceTheme();
enhanceModels();
enhanceNav();
enhanceTables();

// The installable app: the service worker keeps the shell for when the network is gone.
if ("serviceWorker" in navigator && window.isSecureContext) {
  navigator.serviceWorker.register("/sw.js").catch(() => {});
}
