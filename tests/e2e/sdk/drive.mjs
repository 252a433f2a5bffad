// Drives the official OpenPanel SDK against a gateway: GATEWAY_URL, CLIENT_ID, CLIENT_SECRET.
// Prints one JSON line: what each SDK call returned (null means the SDK gave up on a failure).
import { OpenPanel } from "@openpanel/sdk";

const op = new OpenPanel({
  apiUrl: process.env.GATEWAY_URL,
  clientId: process.env.CLIENT_ID,
  clientSecret: process.env.CLIENT_SECRET,
});

const results = {};
results.track = await op.track("sdk_signup", { plan: "pro", cart: { items: 2 } });
results.identify = await op.identify({
  profileId: "sdk-user", firstName: "Ada", lastName: "Lovelace", email: "ada@example.com",
  properties: { tier: "gold" },
});
results.increment = await op.increment({ profileId: "sdk-user", property: "visits", value: 3 });
results.decrement = await op.decrement({ profileId: "sdk-user", property: "visits", value: 1 });
results.upsertGroup = await op.upsertGroup({ id: "acme", type: "company", name: "Acme", properties: { seats: 40 } });
results.setGroup = await op.setGroup("acme");
results.revenue = await op.revenue(1299, { currency: "EUR" });
results.trackIdentified = await op.track("sdk_checkout", { step: 3 });
console.log(JSON.stringify(results));
