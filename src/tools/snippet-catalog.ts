import { ServerConnection } from '@jupyterlab/services';

import { fetchSnippets, ISnippet } from '../api/notebook';

/** The snippet catalog, fetched once from the server (again after a failure). */
export class SnippetCatalog {
  constructor(serverSettings: ServerConnection.ISettings) {
    this._serverSettings = serverSettings;
    this._ready = this._fetch();
  }

  /** Resolves with the snippets once fetched. */
  get ready(): Promise<ISnippet[]> {
    return this._ready;
  }

  /** The snippets fetched so far, in menu order. */
  get snippets(): readonly ISnippet[] {
    return this._snippets;
  }

  /** A snippet already fetched, if any. */
  find(id: string): ISnippet | undefined {
    return this._snippets.find(snippet => snippet.id === id);
  }

  /** A snippet by id: fetches the catalog (again) when needed; throws when unknown. */
  async get(id: string): Promise<ISnippet> {
    let snippets: ISnippet[];
    try {
      snippets = await this._ready;
    } catch {
      this._ready = this._fetch();
      snippets = await this._ready;
    }
    const snippet = snippets.find(s => s.id === id);
    if (!snippet) {
      throw new Error(`no snippet "${id}" in the catalog`);
    }
    return snippet;
  }

  private async _fetch(): Promise<ISnippet[]> {
    this._snippets = await fetchSnippets(this._serverSettings);
    return this._snippets;
  }

  private _ready: Promise<ISnippet[]>;
  private _serverSettings: ServerConnection.ISettings;
  private _snippets: ISnippet[] = [];
}
