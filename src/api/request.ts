import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Where the server extension's REST API lives, under the server's base URL. */
export const API_PREFIX = 'kerasgpu/api/v1';

/**
 * Calls the kerasgpu REST API and returns its parsed JSON.
 *
 * Throws `ServerConnection.ResponseError` on an HTTP error (with the server's
 * message) and `ServerConnection.NetworkError` when the server cannot be reached.
 */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_PREFIX, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // Not JSON (a proxy's error page, say): keep the text for the message.
    }
  }
  if (!response.ok) {
    const message =
      typeof data === 'object' && data?.message ? data.message : text;
    throw new ServerConnection.ResponseError(response, message);
  }
  return data as T;
}
