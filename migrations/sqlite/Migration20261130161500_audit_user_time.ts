import { Migration } from '@mikro-orm/migrations';

export class Migration20261130161500_audit_user_time extends Migration {

  override name = 'Migration20261130161500_audit_user_time';

  override up(): void | Promise<void> {
    this.addSql(`create index \`audit_events_user_id_created_at_index\` on \`audit_events\` (\`user_id\`, \`created_at\`);`);
    this.addSql(`drop index \`audit_events_user_id_index\`;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`create index \`audit_events_user_id_index\` on \`audit_events\` (\`user_id\`);`);
    this.addSql(`drop index \`audit_events_user_id_created_at_index\`;`);
  }

}
