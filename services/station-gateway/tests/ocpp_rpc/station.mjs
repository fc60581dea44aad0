// An independent OCPP client: ocpp-rpc in strict mode validates every message of ours against
// the official JSON schemas. Boots, heart-beats, reports status, requests a session code and
// waits for the code to be pushed to its screen. Prints one JSON line; exits non-zero on any error.
import { RPCClient } from "ocpp-rpc";

const { GATEWAY_URL, STATION_ID, STATION_PASSWORD, OCPP_PROTOCOL } = process.env;
const v16 = OCPP_PROTOCOL === "ocpp1.6";

const client = new RPCClient({
  endpoint: GATEWAY_URL,
  identity: STATION_ID,
  password: STATION_PASSWORD,
  protocols: [OCPP_PROTOCOL],
  strictMode: true,
  reconnect: false,
});

const pushed = [];
let resolvePush;
const gotPush = new Promise((resolve) => (resolvePush = resolve));
if (v16) {
  client.handle("DataTransfer", ({ params }) => {
    pushed.push(params);
    resolvePush();
    return { status: "Accepted" };
  });
} else {
  client.handle("SetDisplayMessage", ({ params }) => {
    pushed.push(params);
    resolvePush();
    return { status: "Accepted" };
  });
}

const fail = (error) => {
  console.error("FAILED:", error && (error.stack || error.message || error));
  process.exit(1);
};
client.on("strictValidationFailure", ({ error }) => fail(error));

try {
  await client.connect();
  const boot = v16
    ? await client.call("BootNotification", { chargePointVendor: "Acme", chargePointModel: "RPC-1" })
    : await client.call("BootNotification", {
        chargingStation: { vendorName: "Acme", model: "RPC-1" },
        reason: "PowerUp",
      });
  if (boot.status !== "Accepted") fail(new Error("boot not accepted"));
  await client.call("Heartbeat", {});
  if (v16) {
    await client.call("StatusNotification", { connectorId: 1, errorCode: "NoError", status: "Available" });
  } else {
    await client.call("StatusNotification", {
      timestamp: new Date().toISOString(),
      connectorStatus: "Available",
      evseId: 1,
      connectorId: 1,
    });
  }
  const reply = await client.call("DataTransfer", {
    vendorId: "com.plugpay",
    messageId: "RequestSessionCode",
    data: v16 ? JSON.stringify({ connectorId: 1 }) : { connectorId: 1 },
  });
  if (reply.status !== "Accepted") fail(new Error("code refused: " + JSON.stringify(reply)));
  const code = v16 ? JSON.parse(reply.data) : reply.data;
  for (const key of ["sessionId", "qr", "code", "expiresAt"]) {
    if (!code[key]) fail(new Error("missing " + key));
  }
  const unknown = await client.call("DataTransfer", { vendorId: "someone.else" });
  await Promise.race([gotPush, new Promise((_, reject) => setTimeout(() => reject(new Error("no push")), 10000))]);
  console.log(JSON.stringify({ boot, code, unknown, pushed }));
  await client.close();
  process.exit(0);
} catch (error) {
  fail(error);
}
